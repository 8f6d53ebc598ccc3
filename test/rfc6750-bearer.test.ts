import t, { type Test } from 'tap'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyError, FastifyInstance, LightMyRequestResponse, preHandlerAsyncHookHandler } from 'fastify'
import { bearer, buildApp, forge, login, validClaims, VALID_HEADER } from './helper.js'
import type { AuthEvent } from '../lib/index.js'

// RFC 6750: the `authenticate` and `requireScopes` preHandlers.

interface Challenge {
  scheme: string
  params: Record<string, string>
}

/** Parses a `WWW-Authenticate` challenge into its scheme and auth-params. */
function challengeOf (header: unknown): Challenge {
  if (typeof header !== 'string') throw new Error(`no WWW-Authenticate header: ${String(header)}`)
  const [, scheme = '', rest = ''] = /^(\S+)\s*(.*)$/s.exec(header) ?? []
  const params: Record<string, string> = {}
  for (const [, name, value] of rest.matchAll(/([A-Za-z_]+)="((?:[^"\\]|\\.)*)"/g)) {
    params[name as string] = (value as string).replace(/\\(.)/g, '$1')
  }
  return { scheme, params }
}

/** Asserts a 401 challenge that names no error (RFC 6750 §3.1: no credentials were sent). */
function assertNoCredentials (t: Test, res: LightMyRequestResponse, realm = 'api'): void {
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], `Bearer realm="${realm}"`)
  t.equal(res.json().code, 'FST_TOKEN_AUTH_NO_CREDENTIALS')
}

/** Asserts a bearer error with the given status and RFC 6750 §3.1 code. */
function assertBearerError (t: Test, res: LightMyRequestResponse, status: number, error: string, code: string): Challenge {
  t.equal(res.statusCode, status)
  const challenge = challengeOf(res.headers['www-authenticate'])
  t.equal(challenge.scheme, 'Bearer')
  t.equal(challenge.params.realm, 'api')
  t.equal(challenge.params.error, error)
  t.match(challenge.params.error_description, /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/, 'RFC 6750 §3: error_description characters')
  t.equal(res.json().code, code)
  t.equal(res.json().statusCode, status)
  return challenge
}

/**
 * A preHandler that looks the decorator up on first use: `buildApp`'s `before` hook adds
 * routes before the plugin has decorated the instance.
 */
function late (app: FastifyInstance, make: () => preHandlerAsyncHookHandler): preHandlerAsyncHookHandler {
  let handler: preHandlerAsyncHookHandler | undefined
  return async function (this: FastifyInstance, request, reply) {
    handler ??= make()
    await handler.call(this, request, reply)
  }
}

/** Sends a request written by hand on a raw socket and returns the status and headers. */
async function rawRequest (app: FastifyInstance, lines: string[]): Promise<{ status: number, headers: Map<string, string>, body: string }> {
  if (!app.server.listening) await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const response = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write([...lines, 'Host: 127.0.0.1', 'Connection: close', '', ''].join('\r\n'))
    })
    let data = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('end', () => resolve(data))
    socket.on('error', reject)
  })
  const [head = '', body = ''] = response.split('\r\n\r\n')
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  const headers = new Map<string, string>()
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim())
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body }
}

t.test('no Authorization header: 401 with a challenge that names no error', async (t) => {
  const app = await buildApp(t)
  const res = await app.inject({ method: 'GET', url: '/protected' })
  assertNoCredentials(t, res)
})

t.test('another scheme (Basic): 401 with a challenge that names no error', async (t) => {
  const app = await buildApp(t)
  const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization: 'Basic dXNlcjE6cGFzc3dvcmQx' } })
  assertNoCredentials(t, res)
})

t.test('a scheme that only starts with Bearer is another scheme', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization: `Bearer_${token}` } })
  assertNoCredentials(t, res)
})

t.test('the scheme is case-insensitive (RFC 9110 §11.1)', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization: `${scheme} ${token}` } })
    t.equal(res.statusCode, 200, scheme)
    t.same(res.json(), { sub: 'user1', scope: ['profile'] }, scheme)
  }
})

t.test('several spaces after Bearer are accepted (RFC 6750 §2.1 1*SP)', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  for (const spaces of ['  ', '     ']) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization: `Bearer${spaces}${token}` } })
    t.equal(res.statusCode, 200, JSON.stringify(spaces))
    t.equal(res.json().sub, 'user1')
  }
})

t.test('Bearer with no token: 400 invalid_request', async (t) => {
  const app = await buildApp(t)
  for (const authorization of ['Bearer', 'bearer ', 'Bearer    ']) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization } })
    assertBearerError(t, res, 400, 'invalid_request', 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER')
  }
})

t.test('regression: a tab after Bearer is a malformed header (400 invalid_request), not another scheme', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  for (const authorization of [`Bearer\t${token}`, `Bearer \t${token}`, `Bearer ${token}\tx`]) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization } })
    assertBearerError(t, res, 400, 'invalid_request', 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER')
  }
})

t.test('characters outside b64token: 400 invalid_request', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  const bad = [
    `${token} extra`, // a second word
    `${token},x`,
    `"${token}"`,
    `${token.slice(0, 10)}!${token.slice(10)}`,
    `${token.slice(0, 10)}=${token.slice(10)}`, // "=" only at the end
    `${token}é`
  ]
  for (const credentials of bad) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization: `Bearer ${credentials}` } })
    assertBearerError(t, res, 400, 'invalid_request', 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER')
  }
})

t.test('trailing "=" is part of b64token: parsed, then rejected as a token', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  const res = await app.inject({ method: 'GET', url: '/protected', headers: bearer(`${token}==`) })
  assertBearerError(t, res, 401, 'invalid_token', 'FST_TOKEN_AUTH_INVALID_TOKEN')
})

t.test('two Authorization headers (inject): 400 invalid_request', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  const admin = await login(app, 'admin', 'admin-password')
  const res = await app.inject({
    method: 'GET',
    url: '/protected',
    headers: { authorization: [`Bearer ${token}`, `Bearer ${admin}`] as unknown as string }
  })
  assertBearerError(t, res, 400, 'invalid_request', 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER')
})

t.test('two Authorization headers on a real socket: 400 invalid_request, though Node keeps the first', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  const admin = await login(app, 'admin', 'admin-password')

  const single = await rawRequest(app, ['GET /protected HTTP/1.1', `Authorization: Bearer ${token}`])
  t.equal(single.status, 200, 'one header is fine')
  t.same(JSON.parse(single.body), { sub: 'user1', scope: ['profile'] })

  const twice = await rawRequest(app, ['GET /protected HTTP/1.1', `Authorization: Bearer ${token}`, `authorization: Bearer ${admin}`])
  t.equal(twice.status, 400)
  const challenge = challengeOf(twice.headers.get('www-authenticate'))
  t.equal(challenge.params.error, 'invalid_request')
  t.equal(JSON.parse(twice.body).code, 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER')
  t.notOk(twice.body.includes(token), 'no token in the body')
})

t.test('a token in the query string is ignored (RFC 6750 §2.3): 401 without error', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  const res = await app.inject({ method: 'GET', url: `/protected?access_token=${token}` })
  assertNoCredentials(t, res)
})

t.test('a token in the request body is ignored: 401 without error', async (t) => {
  const app = await buildApp(t, {
    before: (app) => {
      app.post('/body-protected', { preHandler: late(app, () => app.authenticate) }, async () => ({ ok: true }))
    }
  })
  const token = await login(app)
  const res = await app.inject({ method: 'POST', url: '/body-protected', headers: { 'content-type': 'application/json' }, payload: { access_token: token } })
  assertNoCredentials(t, res)
})

t.test('a garbage token: 401 invalid_token', async (t) => {
  const app = await buildApp(t)
  for (const token of ['garbage', 'a.b.c', 'eyJhbGciOiJIUzI1NiJ9.e30.abc']) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers: bearer(token) })
    assertBearerError(t, res, 401, 'invalid_token', 'FST_TOKEN_AUTH_INVALID_TOKEN')
  }
})

t.test('an expired token: 401 invalid_token', async (t) => {
  const app = await buildApp(t)
  const now = Math.floor(Date.now() / 1000)
  const token = forge(VALID_HEADER, validClaims({ iat: now - 1000, exp: now - 100 }))
  const res = await app.inject({ method: 'GET', url: '/protected', headers: bearer(token) })
  assertBearerError(t, res, 401, 'invalid_token', 'FST_TOKEN_AUTH_INVALID_TOKEN')
})

t.test('a forged token that is valid gets through: the control for the tests above', async (t) => {
  const app = await buildApp(t)
  const res = await app.inject({ method: 'GET', url: '/protected', headers: bearer(forge(VALID_HEADER, validClaims())) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user1', scope: ['profile'] })
})

t.test('the realm option shows in every challenge', async (t) => {
  const app = await buildApp(t, { plugin: { realm: 'my realm' } })
  const token = await login(app)
  assertNoCredentials(t, await app.inject({ method: 'GET', url: '/protected' }), 'my realm')

  const invalid = await app.inject({ method: 'GET', url: '/protected', headers: bearer('garbage') })
  t.equal(invalid.statusCode, 401)
  t.match(challengeOf(invalid.headers['www-authenticate']).params, { realm: 'my realm', error: 'invalid_token' })

  const scope = await app.inject({ method: 'GET', url: '/admin', headers: bearer(token) })
  t.equal(scope.statusCode, 403)
  t.match(challengeOf(scope.headers['www-authenticate']).params, { realm: 'my realm', error: 'insufficient_scope' })
})

t.test('request.user has sub, scope as a list, clientId and the claims', async (t) => {
  const app = await buildApp(t, {
    before: (app) => {
      app.get('/whoami', { preHandler: late(app, () => app.authenticate) }, async (request) => request.user)
    }
  })
  const res = await app.inject({ method: 'GET', url: '/whoami', headers: bearer(await login(app, 'admin', 'admin-password')) })
  t.equal(res.statusCode, 200)
  const user = res.json()
  t.equal(user.sub, '42', 'the user id, as a string')
  t.same(user.scope, ['profile', 'admin'])
  t.equal(user.clientId, 'public')
  t.match(user.claims, { sub: '42', scope: 'profile admin', client_id: 'public', jti: String, iat: Number, exp: Number })
  t.same(Object.keys(user).sort(), ['claims', 'clientId', 'scope', 'sub'])
})

t.test('request.user.scope is an empty list when the token has no scope', async (t) => {
  const app = await buildApp(t)
  for (const scope of [undefined, '']) {
    const token = forge(VALID_HEADER, validClaims({ scope }))
    const res = await app.inject({ method: 'GET', url: '/protected', headers: bearer(token) })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { sub: 'user1', scope: [] })
  }
})

t.test('request.user.scope stays right for more distinct scope claims than are remembered as lists', async (t) => {
  const app = await buildApp(t)
  // 1 000 lists are remembered; the 1 001st distinct one starts the memory afresh.
  for (let i = 0; i <= 1001; i++) {
    const token = forge(VALID_HEADER, validClaims({ jti: `j${i}`, scope: `profile s${i}` }))
    const res = await app.inject({ method: 'GET', url: '/protected', headers: bearer(token) })
    if (res.statusCode !== 200 || res.json().scope.join() !== `profile,s${i}`) {
      t.fail(`token ${i}: ${res.statusCode} ${res.body}`)
      return
    }
  }
  const again = await app.inject({ method: 'GET', url: '/protected', headers: bearer(forge(VALID_HEADER, validClaims({ jti: 'again', scope: 'profile s0' }))) })
  t.same(again.json(), { sub: 'user1', scope: ['profile', 's0'] })
})

t.test('requireScopes after authenticate: 403 insufficient_scope with the scope needed, 200 with it', async (t) => {
  const app = await buildApp(t)
  const user = await app.inject({ method: 'GET', url: '/admin', headers: bearer(await login(app)) })
  const challenge = assertBearerError(t, user, 403, 'insufficient_scope', 'FST_TOKEN_AUTH_INSUFFICIENT_SCOPE')
  t.equal(challenge.params.scope, 'admin')

  const admin = await app.inject({ method: 'GET', url: '/admin', headers: bearer(await login(app, 'admin', 'admin-password')) })
  t.equal(admin.statusCode, 200)
  t.same(admin.json(), { admin: true })

  const none = await app.inject({ method: 'GET', url: '/admin' })
  assertNoCredentials(t, none)
})

t.test('requireScopes alone authenticates by itself', async (t) => {
  const app = await buildApp(t, {
    before: (app) => {
      app.get('/alone', { preHandler: late(app, () => app.requireScopes('admin')) }, async (request) => ({ sub: request.user.sub }))
      app.get('/both', { preHandler: late(app, () => app.requireScopes('profile', 'admin')) }, async () => ({ ok: true }))
    }
  })
  assertNoCredentials(t, await app.inject({ method: 'GET', url: '/alone' }))
  assertBearerError(t, await app.inject({ method: 'GET', url: '/alone', headers: bearer('garbage') }),
    401, 'invalid_token', 'FST_TOKEN_AUTH_INVALID_TOKEN')

  const user = await app.inject({ method: 'GET', url: '/alone', headers: bearer(await login(app)) })
  t.equal(assertBearerError(t, user, 403, 'insufficient_scope', 'FST_TOKEN_AUTH_INSUFFICIENT_SCOPE').params.scope, 'admin')

  const admin = await login(app, 'admin', 'admin-password')
  const res = await app.inject({ method: 'GET', url: '/alone', headers: bearer(admin) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: '42' })

  t.equal((await app.inject({ method: 'GET', url: '/both', headers: bearer(admin) })).statusCode, 200)
  const both = await app.inject({ method: 'GET', url: '/both', headers: bearer(await login(app)) })
  t.equal(assertBearerError(t, both, 403, 'insufficient_scope', 'FST_TOKEN_AUTH_INSUFFICIENT_SCOPE').params.scope, 'profile admin')
})

t.test('requireScopes with no scope or a bad scope name throws FST_TOKEN_AUTH_INVALID_OPTION', async (t) => {
  const app = await buildApp(t)
  const requireScopes = app.requireScopes as (...scopes: unknown[]) => unknown
  const bad: unknown[][] = [[], [''], ['a b'], ['a"b'], ['a\\b'], ['é'], ['admin', 'x y'], [1], [null]]
  for (const args of bad) {
    t.throws(() => requireScopes(...args), { code: 'FST_TOKEN_AUTH_INVALID_OPTION' }, JSON.stringify(args))
  }
  t.type(app.requireScopes('admin', 'read:all', 'a!#$%&\'()*+,-./:;<=>?@[]^_`{|}~'), 'function', 'every scope-token character is fine')
})

t.test('regression: the host setErrorHandler receives bearer errors and WWW-Authenticate is not lost', async (t) => {
  const seen: string[] = []
  const app = await buildApp(t, {
    before: (app) => {
      app.setErrorHandler(async (error: FastifyError, _request, reply) => {
        seen.push(error.code)
        return reply.code(error.statusCode ?? 500).send({ host: true, code: error.code })
      })
    }
  })
  const token = await login(app)
  const cases = [
    { headers: {}, status: 401, code: 'FST_TOKEN_AUTH_NO_CREDENTIALS', error: undefined },
    { headers: bearer('garbage'), status: 401, code: 'FST_TOKEN_AUTH_INVALID_TOKEN', error: 'invalid_token' },
    { headers: { authorization: 'Bearer' }, status: 400, code: 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER', error: 'invalid_request' }
  ]
  for (const { headers, status, code, error } of cases) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers })
    t.equal(res.statusCode, status)
    t.same(res.json(), { host: true, code })
    const challenge = challengeOf(res.headers['www-authenticate'])
    t.equal(challenge.params.realm, 'api')
    t.equal(challenge.params.error, error)
  }
  const res = await app.inject({ method: 'GET', url: '/admin', headers: bearer(token) })
  t.equal(res.statusCode, 403)
  t.same(res.json(), { host: true, code: 'FST_TOKEN_AUTH_INSUFFICIENT_SCOPE' })
  t.equal(challengeOf(res.headers['www-authenticate']).params.scope, 'admin')
  t.same(seen, ['FST_TOKEN_AUTH_NO_CREDENTIALS', 'FST_TOKEN_AUTH_INVALID_TOKEN', 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER', 'FST_TOKEN_AUTH_INSUFFICIENT_SCOPE'])
})

t.test('bearer errors never carry the token, in the body or in the challenge', async (t) => {
  const events: AuthEvent[] = []
  const app = await buildApp(t, { plugin: { onAuthEvent: (event) => { events.push(event) } } })
  const token = await login(app)
  const now = Math.floor(Date.now() / 1000)
  const expired = forge(VALID_HEADER, validClaims({ iat: now - 1000, exp: now - 100 }))
  const spoiled = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  const cases: Array<[string, Record<string, string | string[]>]> = [
    [spoiled, bearer(spoiled)],
    [expired, bearer(expired)],
    [token, { authorization: `Bearer ${token} trailing` }],
    [token, { authorization: `Bearer\t${token}` }],
    [token, { authorization: [`Bearer ${token}`, `Bearer ${token}`] }]
  ]
  for (const [secret, headers] of cases) {
    const res = await app.inject({ method: 'GET', url: '/protected', headers: headers as Record<string, string> })
    t.ok(res.statusCode === 400 || res.statusCode === 401, `rejected with ${res.statusCode}`)
    // Any 12 characters of the token would be a leak; the signature is the secret part.
    const signature = secret.split('.')[2] as string
    t.notOk(res.body.includes(signature), 'no token in the body')
    t.notOk(String(res.headers['www-authenticate']).includes(signature), 'no token in the challenge')
  }
  t.equal(events.filter((e) => e.type === 'login.success').length, 1)
  const rejected = events.filter((e) => e.type === 'token.rejected')
  t.same(rejected.map((e) => e.reason), ['invalid', 'expired', 'malformed_header', 'malformed_header', 'duplicate_header'])
  t.notOk(JSON.stringify(rejected).includes(token.split('.')[2] as string), 'no token in the events')
})

t.test('insufficient scope is reported as an event', async (t) => {
  const events: AuthEvent[] = []
  const app = await buildApp(t, { plugin: { onAuthEvent: (event) => { events.push(event) } } })
  const res = await app.inject({ method: 'GET', url: '/admin', headers: bearer(await login(app)) })
  t.equal(res.statusCode, 403)
  t.match(events.filter((e) => e.type === 'token.rejected'), [{ reason: 'insufficient_scope', ip: '127.0.0.1' }])
})
