import t from 'tap'
import Fastify from 'fastify'
import tokenAuth, { type AccessTokenClaims } from '../lib/index.js'
import { cacheVerifications } from '../lib/tokens/verify-cache.js'
import type { TokenService } from '../lib/tokens/token-service.js'
import { bearer, CHEAP, demoUsers, login, SECRET } from './helper.js'

/*
 * The verified-token cache: a client that sends the same access token on every call pays for
 * its signature once. What must hold: only the exact token that verified is remembered, never a
 * failure, never past its `exp`, and never more than a bounded number of them.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** An app whose /claims route hands back what `request.user.claims` was, and whether it could be changed. */
async function claimsApp (tt: Tap) {
  const users = await demoUsers()
  const seen: AccessTokenClaims[] = []
  const app = Fastify()
  tt.teardown(() => app.close())
  await app.register(tokenAuth, { secret: SECRET, findUser: (username) => users.get(username) ?? null, password: { ...CHEAP }, clockTolerance: 5 })
  app.get('/claims', { preHandler: app.authenticate }, async (request) => {
    seen.push(request.user.claims)
    let changed = true
    try {
      (request.user.claims as Record<string, unknown>).sub = 'admin'
    } catch {
      changed = false
    }
    return { sub: request.user.claims.sub, changed }
  })
  await app.ready()
  return { app, seen }
}

t.test('the same token twice: one verified claims object, frozen, so no request can change it for the next', async (t) => {
  const { app, seen } = await claimsApp(t)
  const token = await login(app)
  const first = await app.inject({ url: '/claims', headers: bearer(token) })
  const second = await app.inject({ url: '/claims', headers: bearer(token) })
  t.same(first.json(), { sub: 'user1', changed: false })
  t.same(second.json(), { sub: 'user1', changed: false })
  t.equal(seen[0], seen[1], 'the second request got the remembered claims')
  t.ok(Object.isFrozen(seen[0]))
})

t.test('a remembered token is accepted at once: no promise, no turn of the microtask queue', async (t) => {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, { secret: SECRET, findUser: (username) => users.get(username) ?? null, password: { ...CHEAP }, revocableAccessTokens: true })
  const queued = new WeakMap<object, { ran: boolean }>()
  app.get('/timing', {
    // A microtask queued before authenticate runs has run by the hook after it, unless
    // authenticate finished without waiting for anything.
    onRequest (request, _reply, done) {
      const mark = { ran: false }
      queued.set(request, mark)
      queueMicrotask(() => { mark.ran = true })
      done()
    },
    preHandler: [app.authenticate, function after (request, reply, done) {
      reply.header('x-waited', String(queued.get(request)?.ran))
      done()
    }]
  }, async (request) => ({ sub: request.user.sub }))
  await app.ready()
  const token = await login(app)
  const first = await app.inject({ url: '/timing', headers: bearer(token) })
  t.same(first.json(), { sub: 'user1' })
  const second = await app.inject({ url: '/timing', headers: bearer(token) })
  t.same(second.json(), { sub: 'user1' })
  t.equal(second.headers['x-waited'], 'false', 'the remembered token, with the memory store: settled at once')
})

t.test('a remembered token is refused once it expires (exp plus the clock tolerance)', async (t) => {
  let now = Date.now()
  t.capture(Date, 'now', () => now)
  const { app } = await claimsApp(t)
  const token = await login(app)
  t.equal((await app.inject({ url: '/claims', headers: bearer(token) })).statusCode, 200)
  // Default lifetime 900 s, tolerance 5 s: still good one second before the end.
  now += (900 + 4) * 1000
  t.equal((await app.inject({ url: '/claims', headers: bearer(token) })).statusCode, 200)
  now += 2000
  const late = await app.inject({ url: '/claims', headers: bearer(token) })
  t.equal(late.statusCode, 401)
  t.match(late.headers['www-authenticate'], /error="invalid_token"/)
})

t.test('a token that differs from a remembered one only in its signature is refused', async (t) => {
  const { app } = await claimsApp(t)
  const token = await login(app)
  t.equal((await app.inject({ url: '/claims', headers: bearer(token) })).statusCode, 200)
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const flipped = `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`
  const res = await app.inject({ url: '/claims', headers: bearer(flipped) })
  t.equal(res.statusCode, 401)
  t.match(res.headers['www-authenticate'], /error="invalid_token"/)
})

t.test('a token with a remembered signature but other claims is verified in full, and refused', async (t) => {
  const { app } = await claimsApp(t)
  const token = await login(app)
  t.equal((await app.inject({ url: '/claims', headers: bearer(token) })).statusCode, 200)
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  const other = Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url')
  const res = await app.inject({ url: '/claims', headers: bearer(`${header}.${other}.${signature}`) })
  t.equal(res.statusCode, 401)
  t.match(res.headers['www-authenticate'], /error="invalid_token"/)
  t.equal((await app.inject({ url: '/claims', headers: bearer(token) })).statusCode, 200, 'the remembered token still works')
})

t.test('a refused token leaves the stack trace limit as it was', async (t) => {
  const { app } = await claimsApp(t)
  const limit = Error.stackTraceLimit
  const res = await app.inject({ url: '/claims', headers: bearer('a.b.c') })
  t.equal(res.statusCode, 401)
  t.equal(Error.stackTraceLimit, limit)
})

t.test('cacheVerifications', async (t) => {
  /**
   * A token service whose verify counts its calls; "bad" tokens are refused. Synchronous as with
   * the plugin's own keys, or answering with promises as with keys fetched from a JWKS.
   */
  function counting (answer: 'sync' | 'async' = 'sync'): { service: TokenService, calls: string[] } {
    const calls: string[] = []
    const verify = (token: string): AccessTokenClaims => {
      calls.push(token)
      if (token.startsWith('bad')) throw new Error('refused')
      return { sub: token, iat: 0, exp: Date.now() / 1000 + 60, jti: token, client_id: 'c', aud: ['a', 'b'] }
    }
    const service: TokenService = {
      sign: () => ({ token: 'signed', expiresIn: 900 }),
      verify: answer === 'sync' ? verify : async (token) => verify(token),
      publicJwks: []
    }
    return { service, calls }
  }

  t.test('a remembered token is answered at once, without a promise', async (t) => {
    const { service, calls } = counting()
    const cached = cacheVerifications(service, 0)
    const first = cached.verify('a')
    t.notOk(first instanceof Promise)
    t.equal(cached.verify('a'), first)
    t.same(calls, ['a'])
  })

  t.test('a verifier that answers with promises: the claims it resolves are remembered', async (t) => {
    const { service, calls } = counting('async')
    const cached = cacheVerifications(service, 0)
    const first = cached.verify('a')
    t.ok(first instanceof Promise)
    const claims = await first
    t.ok(Object.isFrozen(claims))
    t.equal(cached.verify('a'), claims, 'the second answer is the remembered claims, at once')
    await t.rejects(async () => cached.verify('bad'), { message: 'refused' })
    t.same(calls, ['a', 'bad'])
  })

  t.test('remembers at most `size` tokens, dropping the oldest', async (t) => {
    const { service, calls } = counting()
    const cached = cacheVerifications(service, 0, 2)
    for (const token of ['a', 'b', 'a', 'b']) await cached.verify(token)
    t.same(calls, ['a', 'b'], 'verified once each')
    await cached.verify('c')
    await cached.verify('b')
    await cached.verify('a')
    t.same(calls, ['a', 'b', 'c', 'a'], '"a" was dropped for "c" and verified again')
  })

  t.test('never remembers a failure', async (t) => {
    const { service, calls } = counting()
    const cached = cacheVerifications(service, 0)
    t.throws(() => cached.verify('bad'), { message: 'refused' })
    t.throws(() => cached.verify('bad'), { message: 'refused' })
    t.same(calls, ['bad', 'bad'])
  })

  t.test('freezes nested claims too, and hands sign and the public keys through', async (t) => {
    const { service } = counting()
    const cached = cacheVerifications(service, 0)
    const claims = await cached.verify('a')
    t.ok(Object.isFrozen(claims.aud))
    t.same(cached.sign({ sub: 's', scope: [], clientId: 'c' }), { token: 'signed', expiresIn: 900 })
    t.equal(cached.publicJwks, service.publicJwks)
  })
})
