import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { AuthEvent } from '../lib/index.js'
import { bearer, buildApp, cheapHash, forge, tokenRequest, validClaims, VALID_HEADER, type BuildOptions } from './helper.js'

/* The revocation endpoint, RFC 7009. */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

async function app (tt: Tap, plugin: BuildOptions['plugin'] = {}) {
  return buildApp(tt, { plugin: { refreshTokens: true, revocableAccessTokens: true, rateLimit: false, ...plugin } })
}

async function login (a: FastifyInstance, headers: Record<string, string> = {}, extra: Record<string, string> = {}) {
  const res = await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1', ...extra }, headers)
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json() as { access_token: string, refresh_token: string }
}

function revoke (a: FastifyInstance, fields: Record<string, string | string[]>, headers: Record<string, string> = {}) {
  return tokenRequest(a, fields, headers, '/revoke')
}

function assertRevoked (tt: Tap, res: LightMyRequestResponse, message = 'revoked'): void {
  tt.equal(res.statusCode, 200, message)
  // RFC 7009 §2.2 lets the client ignore the body; `{}` as JSON is what strict clients can parse.
  tt.match(res.headers['content-type'], /^application\/json(;|$)/, 'JSON')
  tt.equal(res.body, '{}', 'an empty object')
  tt.equal(res.headers['cache-control'], 'no-store')
  tt.equal(res.headers.pragma, 'no-cache')
}

function assertError (tt: Tap, res: LightMyRequestResponse, status: number, code: string): void {
  tt.equal(res.statusCode, status)
  tt.equal(res.json().error, code)
  tt.same(Object.keys(res.json()).sort(), ['error', 'error_description'])
  tt.equal(res.headers['cache-control'], 'no-store')
}

const refreshWith = (a: FastifyInstance, token: string) => tokenRequest(a, { grant_type: 'refresh_token', refresh_token: token })

t.test('revoking a refresh token ends its family', async (t) => {
  const events: AuthEvent[] = []
  const a = await app(t, { onAuthEvent: (e) => events.push(e) })
  const { refresh_token: r1 } = await login(a)
  const r2 = (await refreshWith(a, r1)).json().refresh_token as string
  const other = await login(a)

  assertRevoked(t, await revoke(a, { token: r2, token_type_hint: 'refresh_token' }))
  t.match(events.at(-1), { type: 'token.revoked', username: 'user1', reason: 'refresh_token' })
  t.equal((await refreshWith(a, r2)).json().error, 'invalid_grant', 'the revoked token')
  t.equal((await refreshWith(a, other.refresh_token)).statusCode, 200, 'another family of the user lives on')
})

t.test('revoking a refresh token denies the access tokens of its family (RFC 7009 §2.1), and only those', async (t) => {
  const a = await app(t)
  const onProtected = async (token: string): Promise<number> => (await a.inject({ url: '/protected', headers: bearer(token) })).statusCode
  const first = await login(a)
  const rotated = (await refreshWith(a, first.refresh_token)).json() as { access_token: string, refresh_token: string }
  const other = await login(a)
  t.same([await onProtected(first.access_token), await onProtected(rotated.access_token)], [200, 200])

  assertRevoked(t, await revoke(a, { token: rotated.refresh_token }))
  t.equal(await onProtected(first.access_token), 401, 'the access token of the login')
  t.equal(await onProtected(rotated.access_token), 401, 'and the one of the refresh')
  t.equal(await onProtected(other.access_token), 200, 'another session of the same user is untouched')
  t.equal((await refreshWith(a, other.refresh_token)).statusCode, 200)
})

t.test('without revocableAccessTokens, revoking a refresh token leaves its access tokens to expire', async (t) => {
  const a = await app(t, { revocableAccessTokens: false })
  const { access_token: access, refresh_token: refresh } = await login(a)
  assertRevoked(t, await revoke(a, { token: refresh }))
  t.equal((await a.inject({ url: '/protected', headers: bearer(access) })).statusCode, 200, 'access tokens are not checked against the store then')
})

t.test('revoking an old token of a family ends the family too', async (t) => {
  const a = await app(t)
  const { refresh_token: r1 } = await login(a)
  const r2 = (await refreshWith(a, r1)).json().refresh_token as string
  assertRevoked(t, await revoke(a, { token: r1 }))
  t.equal((await refreshWith(a, r2)).json().error, 'invalid_grant')
})

t.test('200 for unknown, malformed and already revoked tokens (RFC 7009 §2.2)', async (t) => {
  const a = await app(t)
  const { refresh_token: r1, access_token: access } = await login(a)
  assertRevoked(t, await revoke(a, { token: r1 }))
  assertRevoked(t, await revoke(a, { token: r1 }), 'again')
  assertRevoked(t, await revoke(a, { token: 'A'.repeat(22) + '.' + 'B'.repeat(22) + '.' + 'C'.repeat(43) }), 'well-formed, unknown')
  assertRevoked(t, await revoke(a, { token: 'garbage' }), 'not a token at all')
  assertRevoked(t, await revoke(a, { token: forge(VALID_HEADER, validClaims(), 'another-secret-1f8a9c2e4b6d0f3a5c7e9b1d') }), 'a JWT signed by someone else')
  assertRevoked(t, await revoke(a, { token: forge(VALID_HEADER, validClaims({ exp: Math.floor(Date.now() / 1000) - 3600 })) }), 'an expired access token')
  assertRevoked(t, await revoke(a, { token: access }))
  assertRevoked(t, await revoke(a, { token: access }), 'an access token revoked twice')
})

t.test('a wrong token_type_hint still revokes (RFC 7009 §2.1)', async (t) => {
  const a = await app(t)
  const { refresh_token: refreshToken, access_token: access } = await login(a)
  assertRevoked(t, await revoke(a, { token: refreshToken, token_type_hint: 'access_token' }))
  t.equal((await refreshWith(a, refreshToken)).json().error, 'invalid_grant')
  assertRevoked(t, await revoke(a, { token: access, token_type_hint: 'refresh_token' }))
  t.equal((await a.inject({ url: '/protected', headers: bearer(access) })).statusCode, 401)
  assertRevoked(t, await revoke(a, { token: access, token_type_hint: 'something_else' }))
})

t.test('with revocableAccessTokens, a revoked access token is denied until it expires', async (t) => {
  const events: AuthEvent[] = []
  const a = await app(t, { onAuthEvent: (e) => events.push(e) })
  const { access_token: access } = await login(a)
  const other = await login(a)
  t.equal((await a.inject({ url: '/protected', headers: bearer(access) })).statusCode, 200)

  assertRevoked(t, await revoke(a, { token: access }))
  t.match(events.at(-1), { type: 'token.revoked', clientId: 'public', reason: 'access_token' })
  const denied = await a.inject({ url: '/protected', headers: bearer(access) })
  t.equal(denied.statusCode, 401)
  t.equal(denied.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN')
  t.match(denied.headers['www-authenticate'], /^Bearer realm="api", error="invalid_token"/)
  t.match(events.at(-1), { type: 'token.rejected', reason: 'revoked' })
  t.equal((await a.inject({ url: '/admin', headers: bearer(access) })).statusCode, 401, 'requireScopes refuses it too')
  t.equal((await a.inject({ url: '/protected', headers: bearer(other.access_token) })).statusCode, 200, 'only that token')
})

t.test('without revocableAccessTokens, access tokens are not revocable: unsupported_token_type, and never checked', async (t) => {
  const a = await app(t, { revocableAccessTokens: false })
  const { access_token: access, refresh_token: refreshToken } = await login(a)
  assertError(t, await revoke(a, { token: access }), 400, 'unsupported_token_type')
  t.equal((await a.inject({ url: '/protected', headers: bearer(access) })).statusCode, 200)
  assertRevoked(t, await revoke(a, { token: refreshToken }), 'refresh tokens still are')
})

t.test('with revocableAccessTokens alone (no refresh tokens), /revoke is served for access tokens', async (t) => {
  const a = await app(t, { refreshTokens: false })
  const { access_token: access } = await login(a)
  assertRevoked(t, await revoke(a, { token: access }))
  t.equal((await a.inject({ url: '/protected', headers: bearer(access) })).statusCode, 401)
})

t.test('no /revoke when neither refresh tokens nor revocable access tokens are on', async (t) => {
  const a = await buildApp(t)
  t.equal((await revoke(a, { token: 'x' })).statusCode, 404)
})

t.test('revocationPath moves the endpoint, and the registration prefix applies', async (t) => {
  const a = await buildApp(t, { plugin: { refreshTokens: true }, register: { prefix: '/oauth', revocationPath: '/logout' } })
  const res = await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' }, {}, '/oauth/token')
  const token = res.json().refresh_token as string
  assertRevoked(t, await tokenRequest(a, { token }, {}, '/oauth/logout'))
  t.equal((await tokenRequest(a, { grant_type: 'refresh_token', refresh_token: token }, {}, '/oauth/token')).json().error, 'invalid_grant')
})

t.test('malformed requests: RFC 6749 §5.2 errors from the shared error handler', async (t) => {
  const a = await app(t)
  assertError(t, await revoke(a, {}), 400, 'invalid_request')
  assertError(t, await revoke(a, { token: ['a', 'b'] }), 400, 'invalid_request')
  const json = await a.inject({ method: 'POST', url: '/revoke', headers: { 'content-type': 'application/json' }, payload: '{"token":"x"}' })
  assertError(t, json, 400, 'invalid_request')
  t.match(json.json().error_description, /must be application\/x-www-form-urlencoded/, 'RFC 7009 §2.1: the form encoding is named')
  const options = await a.inject({ method: 'OPTIONS', url: '/revoke' })
  t.equal(options.statusCode, 405)
  t.equal(options.headers.allow, 'POST')
  const big = await revoke(a, { token: 'x'.repeat(5000) })
  assertError(t, big, 400, 'invalid_request')
  const get = await a.inject({ method: 'GET', url: '/revoke' })
  t.equal(get.statusCode, 405)
  t.equal(get.headers.allow, 'POST')
  t.equal(get.json().error, 'invalid_request')
})

t.test('the per-IP limit of /token covers /revoke too', async (t) => {
  const a = await app(t, { rateLimit: { max: 3, timeWindow: 60_000 } })
  await login(a)
  await revoke(a, { token: 'x' })
  await revoke(a, { token: 'x' })
  const res = await revoke(a, { token: 'x' })
  assertError(t, res, 429, 'too_many_requests')
  t.match(res.headers['retry-after'], /^[1-9][0-9]*$/)
})

t.test('with client authentication, a client revokes only its own tokens', async (t) => {
  const basic = (id: string, secret: string) => ({ authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64') })
  const a = await app(t, { clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }, { id: 'mobile' }] })
  const web = await login(a, basic('web', 'web-secret'))

  const anonymous = await revoke(a, { token: web.refresh_token })
  assertError(t, anonymous, 401, 'invalid_client')
  t.match(anonymous.headers['www-authenticate'], /^Basic /)
  assertError(t, await revoke(a, { token: web.refresh_token, client_id: 'web', client_secret: 'wrong' }), 401, 'invalid_client')
  assertError(t, await revoke(a, { token: web.refresh_token, client_id: 'mobile' }), 400, 'unauthorized_client')
  assertError(t, await revoke(a, { token: web.access_token, client_id: 'mobile' }), 400, 'unauthorized_client')
  t.equal((await a.inject({ url: '/protected', headers: bearer(web.access_token) })).statusCode, 200, 'another client could not revoke it')

  assertRevoked(t, await revoke(a, { token: web.refresh_token }, basic('web', 'web-secret')))
  assertRevoked(t, await revoke(a, { token: web.access_token }, basic('web', 'web-secret')))
  t.equal((await a.inject({ url: '/protected', headers: bearer(web.access_token) })).statusCode, 401)
})
