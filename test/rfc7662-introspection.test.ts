import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { bearer, buildApp, cheapHash, demoUsers, forge, form, tokenRequest, validClaims, VALID_HEADER, type LooseOptions } from './helper.js'
import type { AuthEvent, ClientRecord, UserRecord } from '../lib/index.js'

/* The token introspection endpoint, RFC 7662. */

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'
const RS = { authorization: 'Basic ' + Buffer.from('rs:rs-secret').toString('base64') }

async function clients (): Promise<ClientRecord[]> {
  return [
    { id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true },
    { id: 'rs2', secretHash: await cheapHash('rs2-secret'), introspect: true },
    { id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['client_credentials'], scopes: ['reports'] },
    { id: 'web', secretHash: await cheapHash('web-secret') },
    { id: 'mobile' }
  ]
}

function basic (id: string, secret: string): Record<string, string> {
  return { authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64') }
}

async function serve (t: Test, plugin: LooseOptions = {}, users?: Map<string, UserRecord>): Promise<FastifyInstance> {
  return buildApp(t, {
    plugin: {
      issuer: ISSUER,
      audience: AUDIENCE,
      clients: await clients(),
      publicClient: true,
      refreshTokens: true,
      revocableAccessTokens: true,
      rateLimit: false,
      ...(users === undefined ? {} : { findUser: (name: string) => users.get(name) ?? null }),
      ...plugin
    }
  })
}

function introspect (app: FastifyInstance, fields: Record<string, string | string[]>, headers: Record<string, string> = RS): Promise<LightMyRequestResponse> {
  return tokenRequest(app, fields, headers, '/introspect')
}

async function login (app: FastifyInstance, username = 'user1', password = 'password1'): Promise<{ access_token: string, refresh_token: string }> {
  const res = await tokenRequest(app, { grant_type: 'password', username, password })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json()
}

function assertInactive (t: Test, res: LightMyRequestResponse, message: string): void {
  t.equal(res.statusCode, 200, message)
  t.equal(res.body, '{"active":false}', `${message}: exactly {"active":false}`)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
}

function assertError (t: Test, res: LightMyRequestResponse, status: number, code: string): void {
  t.equal(res.statusCode, status, code)
  t.equal(res.json().error, code)
  t.same(Object.keys(res.json()).sort(), ['error', 'error_description'])
  t.equal(res.headers['cache-control'], 'no-store')
}

t.test('an active access token: its claims as RFC 7662 §2.2 names them, never cached', async (t) => {
  const app = await serve(t)
  const { access_token: token } = await login(app, 'admin', 'admin-password')
  const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
  const res = await introspect(app, { token })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.json(), {
    active: true,
    scope: 'profile admin',
    client_id: 'public',
    token_type: 'Bearer',
    exp: claims.exp,
    iat: claims.iat,
    sub: '42',
    aud: AUDIENCE,
    iss: ISSUER,
    jti: claims.jti
  }, 'no username: an access token carries the user id, not the name')
})

t.test('a client credentials token, and a token without scope or nbf', async (t) => {
  const app = await serve(t)
  const svc = await tokenRequest(app, { grant_type: 'client_credentials' }, basic('svc', 'svc-secret'))
  t.match((await introspect(app, { token: svc.json().access_token })).json(), { active: true, sub: 'svc', client_id: 'svc', scope: 'reports', token_type: 'Bearer' })
  // Read once: the introspection may cross a second's boundary.
  const nbf = Math.floor(Date.now() / 1000) - 10
  const bare = forge(VALID_HEADER, validClaims({ iss: ISSUER, aud: AUDIENCE, scope: undefined, nbf }))
  const res = (await introspect(app, { token: bare })).json()
  t.notOk('scope' in res)
  t.equal(res.nbf, nbf)
})

t.test('an active refresh token: its session\'s data, with the username', async (t) => {
  const app = await serve(t)
  const before = Math.floor(Date.now() / 1000)
  const { refresh_token: token } = await login(app)
  const after = Math.floor(Date.now() / 1000)
  const res = await introspect(app, { token, token_type_hint: 'refresh_token' })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, { active: true, scope: 'profile', client_id: 'public', username: 'user1', token_type: 'refresh_token', sub: 'user1', iss: ISSUER })
  t.notOk('aud' in body, 'no aud: a refresh token is not for the API the audience names (RFC 6749 §1.5)')
  t.ok(body.iat >= before && body.iat <= after, 'iat: the login')
  t.equal(body.exp - body.iat, 90 * 24 * 3600, 'exp: the session\'s absolute end')
  t.type(body.jti, 'string')
  t.notOk(body.jti.includes(token) || token.includes(body.jti), 'the jti is not the token')
  // Looking spends nothing: the token still refreshes.
  t.equal((await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: token })).statusCode, 200)
})

t.test('a refresh token replaced by rotation is inactive, and introspecting it is not reuse', async (t) => {
  const app = await serve(t)
  const first = await login(app)
  const second = (await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: first.refresh_token })).json()
  assertInactive(t, await introspect(app, { token: first.refresh_token }), 'the replaced token')
  t.match((await introspect(app, { token: second.refresh_token })).json(), { active: true }, 'the family lives on')
  t.equal((await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: second.refresh_token })).statusCode, 200)
})

t.test('a refresh token is judged as the refresh grant would: the user as they are now', async (t) => {
  const users = await demoUsers()
  const app = await serve(t, {}, users)
  const session = await login(app)
  const admin = await login(app, 'admin', 'admin-password')
  users.set('admin', { ...users.get('admin') as UserRecord, scopes: ['profile'] })
  t.equal((await introspect(app, { token: admin.refresh_token })).json().scope, 'profile', 'a scope the user lost is not reported')
  users.set('admin', { username: 'admin', id: 42, passwordHash: (users.get('admin') as UserRecord).passwordHash })
  t.notOk('scope' in (await introspect(app, { token: admin.refresh_token })).json(), 'no scope left')
  users.set('user1', { ...users.get('user1') as UserRecord, disabled: true })
  assertInactive(t, await introspect(app, { token: session.refresh_token }), 'a disabled user')
  users.set('user1', { ...users.get('user1') as UserRecord, disabled: false, id: 'someone-else' })
  assertInactive(t, await introspect(app, { token: session.refresh_token }), 'another account under the name')
  users.delete('user1')
  assertInactive(t, await introspect(app, { token: session.refresh_token }), 'a removed user')
})

t.test('anything else is exactly {"active":false}: nothing tells why', async (t) => {
  const app = await serve(t)
  const now = Math.floor(Date.now() / 1000)
  const ours = (claims: Record<string, unknown>): string => forge(VALID_HEADER, validClaims({ iss: ISSUER, aud: AUDIENCE, ...claims }))
  const revoked = await login(app)
  t.equal((await tokenRequest(app, { token: revoked.access_token }, {}, '/revoke')).statusCode, 200)
  t.equal((await tokenRequest(app, { token: revoked.refresh_token }, {}, '/revoke')).statusCode, 200)
  const loggedOut = await login(app, 'admin', 'admin-password')
  await app.revokeUserTokens(42)
  const cases: Array<[string, string]> = [
    ['an expired access token', ours({ iat: now - 1000, exp: now - 100 })],
    ['a revoked access token (RFC 7009)', revoked.access_token],
    ['a revoked refresh token', revoked.refresh_token],
    ['an access token of a user logged out everywhere', loggedOut.access_token],
    ['a refresh token of a user logged out everywhere', loggedOut.refresh_token],
    ['a forged signature', forge(VALID_HEADER, validClaims({ iss: ISSUER, aud: AUDIENCE }), 'another-secret-of-thirty-two-bytes!!')],
    ['another issuer', ours({ iss: 'https://other.example' })],
    ['another audience', ours({ aud: 'https://other.example' })],
    ['a token not yet valid', ours({ nbf: now + 600 })],
    ['an unknown refresh token', 'AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.' + 'A'.repeat(43)],
    ['garbage', 'not-a-token'],
    ['alg none', `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${Buffer.from(JSON.stringify(validClaims({ iss: ISSUER, aud: AUDIENCE }))).toString('base64url')}.`]
  ]
  for (const [name, token] of cases) assertInactive(t, await introspect(app, { token }), name)
  // A wrong hint changes nothing (RFC 7662 §2.1: the server may ignore it).
  const good = await login(app)
  t.match((await introspect(app, { token: good.access_token, token_type_hint: 'refresh_token' })).json(), { active: true })
  t.match((await introspect(app, { token: good.refresh_token, token_type_hint: 'access_token' })).json(), { active: true })
  t.match((await introspect(app, { token: good.access_token, token_type_hint: 'nonsense' })).json(), { active: true })
})

t.test('without revocable access tokens, a token is active as long as authenticate takes it', async (t) => {
  const app = await serve(t, { revocableAccessTokens: false, refreshTokens: false })
  const { access_token: token } = await login(app)
  await app.revokeUserTokens('user1')
  t.equal((await app.inject({ url: '/protected', headers: bearer(token) })).statusCode, 200)
  t.match((await introspect(app, { token })).json(), { active: true })
  // Without refresh tokens, a refresh-token-shaped string is just not a JWT.
  assertInactive(t, await introspect(app, { token: 'AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.' + 'A'.repeat(43) }), 'refresh tokens off')
})

t.test('only clients allowed to introspect are answered: 401 invalid_client otherwise (RFC 7662 §2.1, §2.3)', async (t) => {
  const events: AuthEvent[] = []
  const app = await serve(t, { onAuthEvent: (e) => events.push(e) })
  const { access_token: token } = await login(app)
  const cases: Array<[string, Record<string, string>, Record<string, string>]> = [
    ['no credentials (the default public client)', {}, {}],
    ['a public client', { client_id: 'mobile' }, {}],
    ['a confidential client not allowed to introspect', {}, basic('web', 'web-secret')],
    ['a wrong secret', {}, basic('rs', 'wrong')],
    ['a wrong secret in the form', { client_id: 'rs', client_secret: 'wrong' }, {}],
    ['an unknown client', {}, basic('nobody', 'rs-secret')],
    ['a scheme other than Basic', {}, bearer(token)]
  ]
  for (const [name, fields, headers] of cases) {
    const res = await introspect(app, { token, ...fields }, headers)
    assertError(t, res, 401, 'invalid_client')
    t.match(res.headers['www-authenticate'], /^Basic realm="api"/, name)
    t.notOk(res.body.includes('active'), `${name}: nothing about the token`)
  }
  t.match(events.filter((e) => e.type === 'client.failure'), [
    { clientId: 'public', reason: 'not_allowed_to_introspect' },
    { clientId: 'mobile', reason: 'not_allowed_to_introspect' },
    { clientId: 'web', reason: 'not_allowed_to_introspect' }
  ])
  // Credentials in the form are as good as Basic.
  t.match((await introspect(app, { token, client_id: 'rs', client_secret: 'rs-secret' }, {})).json(), { active: true })
})

t.test('an introspecting client sees tokens issued to other clients (it is a resource server)', async (t) => {
  const app = await serve(t)
  const web = (await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' }, basic('web', 'web-secret'))).json()
  t.match((await introspect(app, { token: web.access_token })).json(), { active: true, client_id: 'web' })
  t.match((await introspect(app, { token: web.refresh_token }, basic('rs2', 'rs2-secret'))).json(), { active: true, client_id: 'web' })
})

t.test('bad input is the RFC\'s error, never a 500', async (t) => {
  const app = await serve(t, { bodyLimit: 200 })
  assertError(t, await introspect(app, {}), 400, 'invalid_request')
  assertError(t, await introspect(app, { token: '' }), 400, 'invalid_request')
  assertError(t, await introspect(app, { token: ['a', 'b'] }), 400, 'invalid_request')
  const json = await app.inject({ method: 'POST', url: '/introspect', headers: { ...RS, 'content-type': 'application/json' }, payload: '{"token":"x"}' })
  assertError(t, json, 400, 'invalid_request')
  const none = await app.inject({ method: 'POST', url: '/introspect', headers: RS })
  assertError(t, none, 400, 'invalid_request')
  const big = await app.inject({ method: 'POST', url: '/introspect', headers: { ...RS, 'content-type': 'application/x-www-form-urlencoded' }, payload: form({ token: 'x'.repeat(500) }) })
  assertError(t, big, 400, 'invalid_request')
  for (const method of ['GET', 'PUT', 'PATCH', 'DELETE'] as const) {
    const res = await app.inject({ method, url: '/introspect', headers: RS })
    assertError(t, res, 405, 'invalid_request')
    t.equal(res.headers.allow, 'POST')
  }
})

t.test('each client has its own limit (RFC 7662 §4: token scanning)', async (t) => {
  const events: AuthEvent[] = []
  const app = await serve(t, { introspectionRateLimit: { max: 2, timeWindow: 60_000 }, onAuthEvent: (e) => events.push(e) })
  const { access_token: token } = await login(app)
  t.equal((await introspect(app, { token })).statusCode, 200)
  t.equal((await introspect(app, { token: 'garbage' })).statusCode, 200)
  const refused = await introspect(app, { token })
  assertError(t, refused, 429, 'too_many_requests')
  t.match(refused.headers['retry-after'], /^[1-9]\d*$/)
  t.match(events.filter((e) => e.type === 'introspection.throttled'), [{ clientId: 'rs' }])
  t.equal((await introspect(app, { token }, basic('rs2', 'rs2-secret'))).statusCode, 200, 'another client is not limited by it')
})

t.test('introspectionRateLimit: false turns the per-client limit off; the per-IP limit still applies', async (t) => {
  const app = await serve(t, { introspectionRateLimit: false, rateLimit: { max: 3, timeWindow: 60_000 } })
  for (let i = 0; i < 3; i++) t.equal((await introspect(app, { token: 'x' })).statusCode, 200)
  assertError(t, await introspect(app, { token: 'x' }), 429, 'too_many_requests')
})

t.test('the endpoint is served only when a client may introspect, at introspectionPath under the prefix', async (t) => {
  const none = await buildApp(t, { plugin: { clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }] } })
  t.equal((await introspect(none, { token: 'x' }, basic('web', 'web-secret'))).statusCode, 404)
  const moved = await serve(t, { introspectionPath: '/oauth/introspect', prefix: '/auth' })
  t.equal((await tokenRequest(moved, { token: 'x' }, RS, '/auth/oauth/introspect')).json().active, false)
  for (const [plugin, message] of [
    [{ introspectionPath: 'introspect' }, /introspectionPath/],
    [{ introspectionPath: '/token' }, /introspectionPath/],
    [{ introspectionPath: '/revoke' }, /introspectionPath/],
    [{ introspectionRateLimit: { max: 0 } }, /introspectionRateLimit/]
  ] as Array<[LooseOptions, RegExp]>) {
    await t.rejects(serve(t, plugin), { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message })
  }
})

t.test('without issuer or audience configured, the answers carry neither', async (t) => {
  const app = await serve(t, { issuer: undefined, audience: undefined })
  const session = await login(app, 'admin', 'admin-password')
  for (const token of [session.access_token, session.refresh_token]) {
    const body = (await introspect(app, { token })).json()
    t.match(body, { active: true, sub: '42' })
    t.notOk('iss' in body || 'aud' in body)
  }
})

t.test('a store that cannot answer is a 503, never "active" for a token that could not be checked', async (t) => {
  const { createMemoryStore, StoreUnavailableError } = await import('../lib/index.js')
  const memory = createMemoryStore()
  t.teardown(() => memory.close?.())
  let down = false
  const store = {
    ...memory,
    revocationState: (...args: Parameters<typeof memory.revocationState>) => {
      if (down) throw new StoreUnavailableError()
      return memory.revocationState(...args)
    }
  }
  const app = await serve(t, { store, revocableAccessTokens: { failOpen: true } })
  const { access_token: token } = await login(app)
  down = true
  t.equal((await app.inject({ url: '/protected', headers: bearer(token) })).statusCode, 200, 'authenticate fails open, as configured')
  const res = await introspect(app, { token })
  assertError(t, res, 503, 'temporarily_unavailable')
  t.equal(res.headers['retry-after'], '1')
})
