import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { ResourceOwnerPassword } from 'simple-oauth2'
import * as oidc from 'openid-client'
import * as jose from 'jose'
import { buildApp, CHEAP, SECRET, type LooseOptions } from './helper.js'
import { hashPassword } from '../lib/index.js'
import { signingKey } from './key-fixtures.js'
import { buildServer } from '../examples/server.js'

/*
 * Interop with OAuth2 clients and a JWT library we did not write, against a real server on
 * 127.0.0.1: simple-oauth2's ResourceOwnerPassword, openid-client's generic grant (v6 has no
 * password-grant helper of its own, but sends any grant type through `genericGrantRequest` and
 * validates the answer strictly), and jose verifying our access tokens independently, with our
 * HMAC secret or against our JWKS over HTTP. Both clients also refresh (RFC 6749 §6) and revoke
 * (RFC 7009) through their own helpers.
 */

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'
// RFC 6749 §2.3.1: the client id and secret are form-urlencoded before HTTP Basic. Characters that
// differ between encoders show whether both sides read the spec the same way.
const CLIENT_ID = 'web app+1'
const CLIENT_SECRET = 'p@ss:w rd+/%~&='

async function serve (t: Test, plugin: LooseOptions = {}): Promise<{ app: FastifyInstance, origin: string }> {
  const app = await buildApp(t, {
    plugin: {
      issuer: ISSUER,
      audience: AUDIENCE,
      clients: [{ id: CLIENT_ID, secretHash: await hashPassword(CLIENT_SECRET, CHEAP) }, { id: 'spa' }],
      ...plugin
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, origin: `http://127.0.0.1:${port}` }
}

/** Calls a protected route over HTTP with the token, as a client would. */
async function callProtected (origin: string, token: string, path = '/protected'): Promise<{ status: number, body: unknown, challenge: string | null }> {
  const res = await fetch(`${origin}${path}`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.json(), challenge: res.headers.get('www-authenticate') }
}

t.test('simple-oauth2 ResourceOwnerPassword: get a token, call a protected route', async (t) => {
  const { origin } = await serve(t)
  for (const authorizationMethod of ['header', 'body'] as const) {
    const client = new ResourceOwnerPassword({
      client: { id: CLIENT_ID, secret: CLIENT_SECRET },
      auth: { tokenHost: origin, tokenPath: '/token' },
      options: { authorizationMethod }
    })
    const accessToken = await client.getToken({ username: 'user1', password: 'password1', scope: ['profile'] })
    t.match(accessToken.token, { token_type: 'Bearer', expires_in: 900 }, `client credentials in the ${authorizationMethod}`)
    t.notOk(accessToken.expired(), 'simple-oauth2 reads expires_in')
    const res = await callProtected(origin, accessToken.token.access_token as string)
    t.equal(res.status, 200)
    t.same(res.body, { sub: 'user1', scope: ['profile'] })

    // The RFC 6749 §5.2 error reaches the client as an error it can read.
    const refused = await client.getToken({ username: 'user1', password: 'wrong' }).then(() => null, (error: { output?: { statusCode: number }, data?: { payload?: unknown } }) => error)
    t.equal(refused?.output?.statusCode, 400)
    t.match(refused?.data?.payload, { error: 'invalid_grant' })
  }

  const wrongSecret = new ResourceOwnerPassword({ client: { id: CLIENT_ID, secret: 'nope' }, auth: { tokenHost: origin, tokenPath: '/token' } })
  const failed = await wrongSecret.getToken({ username: 'user1', password: 'password1' }).then(() => null, (error: { output?: { statusCode: number }, data?: { payload?: unknown } }) => error)
  t.equal(failed?.output?.statusCode, 401)
  t.match(failed?.data?.payload, { error: 'invalid_client' })
})

t.test('openid-client genericGrantRequest with the password grant', async (t) => {
  const { origin } = await serve(t)
  const server = { issuer: ISSUER, token_endpoint: `${origin}/token` }

  const confidential = new oidc.Configuration(server, CLIENT_ID, CLIENT_SECRET, oidc.ClientSecretBasic(CLIENT_SECRET))
  oidc.allowInsecureRequests(confidential) // plain HTTP on loopback, for the test only
  const tokens = await oidc.genericGrantRequest(confidential, 'password', { username: 'admin', password: 'admin-password' })
  t.equal(tokens.token_type, 'bearer', 'openid-client lower-cases token_type; the answer passed its checks')
  t.equal(tokens.scope, 'profile admin')
  t.ok((tokens.expiresIn() ?? 0) > 890)
  t.equal((await callProtected(origin, tokens.access_token, '/admin')).status, 200)

  const viaPost = new oidc.Configuration(server, CLIENT_ID, CLIENT_SECRET, oidc.ClientSecretPost(CLIENT_SECRET))
  oidc.allowInsecureRequests(viaPost)
  const posted = await oidc.genericGrantRequest(viaPost, 'password', { username: 'user1', password: 'password1', scope: 'profile' })
  t.equal((await callProtected(origin, posted.access_token)).status, 200)

  const spa = new oidc.Configuration(server, 'spa', undefined, oidc.None())
  oidc.allowInsecureRequests(spa)
  const publicClient = await oidc.genericGrantRequest(spa, 'password', { username: 'user1', password: 'password1' })
  t.equal((await callProtected(origin, publicClient.access_token)).status, 200, 'a public client, known by its id')

  // Errors come back as ResponseBodyError carrying the RFC 6749 §5.2 code.
  const grantError = await oidc.genericGrantRequest(spa, 'password', { username: 'user1', password: 'wrong' }).catch((e: unknown) => e)
  t.ok(grantError instanceof oidc.ResponseBodyError)
  t.match(grantError, { error: 'invalid_grant', status: 400 })
  // A malformed scope: a scope the user merely lacks is narrowed now, not an error (issue 13).
  const scopeError = await oidc.genericGrantRequest(spa, 'password', { username: 'user1', password: 'password1', scope: 'bad"scope' }).catch((e: unknown) => e)
  t.match(scopeError, { error: 'invalid_scope', status: 400 })
  const badSecret = new oidc.Configuration(server, CLIENT_ID, 'nope', oidc.ClientSecretBasic('nope'))
  oidc.allowInsecureRequests(badSecret)
  // A 401 with a Basic challenge (RFC 6749 §5.2) is surfaced as the challenge itself.
  const clientError = await oidc.genericGrantRequest(badSecret, 'password', { username: 'user1', password: 'password1' }).catch((e: unknown) => e)
  t.ok(clientError instanceof oidc.WWWAuthenticateChallengeError)
  t.match(clientError, { status: 401, cause: [{ scheme: 'basic', parameters: { realm: 'api' } }] })
  t.match(await (clientError as oidc.WWWAuthenticateChallengeError).response.json(), { error: 'invalid_client' })
})

t.test('jose verifies our access tokens on its own: HS256, typ at+jwt, iss, aud (RFC 9068 §4)', async (t) => {
  const { origin } = await serve(t)
  const client = new ResourceOwnerPassword({ client: { id: 'spa', secret: '' }, auth: { tokenHost: origin, tokenPath: '/token' }, options: { authorizationMethod: 'body' } })
  const { token } = await client.getToken({ username: 'admin', password: 'admin-password' })
  const key = new TextEncoder().encode(SECRET)
  const { payload, protectedHeader } = await jose.jwtVerify(token.access_token as string, key, {
    algorithms: ['HS256'],
    typ: 'at+jwt',
    issuer: ISSUER,
    audience: AUDIENCE,
    requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id']
  })
  t.same(protectedHeader, { alg: 'HS256', typ: 'at+jwt' })
  t.match(payload, { iss: ISSUER, aud: AUDIENCE, client_id: 'spa', scope: 'profile admin', jti: String })
  t.equal(payload.sub, '42', 'sub is the user id, as a string (RFC 7519 §4.1.2)')
  t.equal((payload.exp as number) - (payload.iat as number), 900)

  // And jose refuses it where it must: another audience, another issuer, another type, another key.
  const refusals: Array<[string, jose.JWTVerifyOptions]> = [
    ['audience', { audience: 'https://other.example' }],
    ['issuer', { issuer: 'https://other.example' }],
    ['typ', { typ: 'JWT' }],
    ['algorithm', { algorithms: ['HS512'] }]
  ]
  for (const [name, options] of refusals) {
    await t.rejects(jose.jwtVerify(token.access_token as string, key, { algorithms: ['HS256'], ...options }), `another ${name}`)
  }
  await t.rejects(jose.jwtVerify(token.access_token as string, new TextEncoder().encode('another-secret-of-thirty-two-bytes!!')))

  // The other way round: a token jose signs to the same rules is accepted by authenticate.
  const signed = await new jose.SignJWT({ client_id: 'spa', scope: 'profile' })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
    .setSubject('jose-user').setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('5m').setJti('jose-1')
    .sign(key)
  const res = await callProtected(origin, signed)
  t.equal(res.status, 200)
  t.same(res.body, { sub: 'jose-user', scope: ['profile'] })
})

const SESSIONS: LooseOptions = { refreshTokens: true, revocableAccessTokens: true }

/** The RFC 6749 §5.2 answer inside a rejection of simple-oauth2 (a Boom error). */
function boom (error: { output?: { statusCode: number }, data?: { payload?: { error?: string } } }): [number | undefined, string | undefined] {
  return [error.output?.statusCode, error.data?.payload?.error]
}

t.test('simple-oauth2: AccessToken.refresh() rotates the refresh token; revokeAll() ends the session', async (t) => {
  const { origin } = await serve(t, SESSIONS)
  const client = new ResourceOwnerPassword({
    client: { id: CLIENT_ID, secret: CLIENT_SECRET },
    // simple-oauth2's defaults, `json: 'strict'` included: /revoke answers `{}` as JSON.
    auth: { tokenHost: origin, tokenPath: '/token', revokePath: '/revoke' }
  })
  const first = await client.getToken({ username: 'admin', password: 'admin-password' })
  t.type(first.token.refresh_token, 'string')
  const second = await first.refresh()
  t.not(second.token.refresh_token, first.token.refresh_token, 'a new refresh token (RFC 6749 §6)')
  t.match(second.token, { token_type: 'Bearer', expires_in: 900, scope: 'profile admin' })
  t.notOk(second.expired())
  t.equal((await callProtected(origin, second.token.access_token as string, '/admin')).status, 200)
  const narrowed = await second.refresh({ scope: ['profile'] })
  t.equal((await callProtected(origin, narrowed.token.access_token as string, '/admin')).status, 403, 'scope narrowed on refresh')

  // The spent token again is reuse (RFC 9700 §4.14.2): refused, and the family's newest token with it.
  t.same(boom(await first.refresh().then(() => ({}), (error: object) => error)), [400, 'invalid_grant'])
  t.same(boom(await narrowed.refresh().then(() => ({}), (error: object) => error)), [400, 'invalid_grant'], 'the family ended')

  // revokeAll() revokes the access token, then the refresh token (RFC 7009), each with its hint.
  const other = await client.getToken({ username: 'user1', password: 'password1' })
  await other.revokeAll()
  t.equal((await callProtected(origin, other.token.access_token as string)).status, 401, 'the access token is revoked')
  t.same(boom(await other.refresh().then(() => ({}), (error: object) => error)), [400, 'invalid_grant'], 'the refresh token too')
})

t.test('simple-oauth2 with its default options against the example server: revoke() and revokeAll() succeed', async (t) => {
  const app = await buildServer({ LOG_LEVEL: 'silent', JWT_SECRET: 'interop-example-secret-5d2a8c1f9e3b7a40' })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  const origin = `http://127.0.0.1:${port}`
  // The example server takes public clients: an id and no secret, sent in the body.
  const client = new ResourceOwnerPassword({
    client: { id: 'cli', secret: '' },
    auth: { tokenHost: origin, tokenPath: '/token', revokePath: '/revoke' },
    options: { authorizationMethod: 'body' }
  })

  const one = await client.getToken({ username: 'user1', password: 'password1' })
  await one.revoke('access_token')
  t.equal((await callProtected(origin, one.token.access_token as string)).status, 401, 'revoke(\'access_token\') resolved, and revoked it')
  await one.revoke('refresh_token')
  t.same(boom(await one.refresh().then(() => ({}), (error: object) => error)), [400, 'invalid_grant'], 'revoke(\'refresh_token\') too')

  const two = await client.getToken({ username: 'admin', password: 'admin-password' })
  t.equal((await callProtected(origin, two.token.access_token as string, '/admin')).status, 200)
  await two.revokeAll()
  t.equal((await callProtected(origin, two.token.access_token as string, '/admin')).status, 401, 'revokeAll() resolved, and revoked both')
  t.same(boom(await two.refresh().then(() => ({}), (error: object) => error)), [400, 'invalid_grant'])
  await two.revokeAll()
  t.pass('revoking tokens already revoked succeeds too (RFC 7009 §2.2)')
})

t.test('openid-client refreshTokenGrant and tokenRevocation', async (t) => {
  const { origin } = await serve(t, SESSIONS)
  const server = { issuer: ISSUER, token_endpoint: `${origin}/token`, revocation_endpoint: `${origin}/revoke` }
  const confidential = new oidc.Configuration(server, CLIENT_ID, CLIENT_SECRET, oidc.ClientSecretBasic(CLIENT_SECRET))
  const spa = new oidc.Configuration(server, 'spa', undefined, oidc.None())
  for (const config of [confidential, spa]) oidc.allowInsecureRequests(config) // plain HTTP on loopback, for the test only

  const login = await oidc.genericGrantRequest(confidential, 'password', { username: 'user1', password: 'password1' })
  const refreshed = await oidc.refreshTokenGrant(confidential, login.refresh_token as string)
  t.equal(refreshed.token_type, 'bearer', 'the answer passed openid-client\'s checks')
  t.not(refreshed.refresh_token, login.refresh_token)
  t.ok((refreshed.expiresIn() ?? 0) > 890)
  t.equal((await callProtected(origin, refreshed.access_token)).status, 200)

  // Another client cannot use it (RFC 6749 §10.4); its own still can: the refusal spent nothing.
  const foreign = await oidc.refreshTokenGrant(spa, refreshed.refresh_token as string).catch((e: unknown) => e)
  t.ok(foreign instanceof oidc.ResponseBodyError)
  t.match(foreign, { error: 'invalid_grant', status: 400 })
  const again = await oidc.refreshTokenGrant(confidential, refreshed.refresh_token as string)

  // A token two rotations back presented again: reuse, which ends the family and its access tokens.
  const bystander = await oidc.genericGrantRequest(confidential, 'password', { username: 'user1', password: 'password1' })
  t.match(await oidc.refreshTokenGrant(confidential, login.refresh_token as string).catch((e: unknown) => e), { error: 'invalid_grant', status: 400 })
  t.equal((await callProtected(origin, again.access_token)).status, 401, 'the family\'s access tokens are denied at once')

  // RFC 7009 through openid-client: both kinds of token, and the 200 for one already revoked.
  const session = await oidc.genericGrantRequest(spa, 'password', { username: 'admin', password: 'admin-password' })
  await oidc.tokenRevocation(spa, session.refresh_token as string, { token_type_hint: 'refresh_token' })
  await oidc.tokenRevocation(spa, session.access_token)
  await oidc.tokenRevocation(spa, session.access_token)
  t.match(await oidc.refreshTokenGrant(spa, session.refresh_token as string).catch((e: unknown) => e), { error: 'invalid_grant', status: 400 })
  t.equal((await callProtected(origin, session.access_token, '/admin')).status, 401)
  t.equal((await callProtected(origin, bystander.access_token)).status, 200, 'other sessions are untouched')
})

t.test('jose verifies asymmetrically signed tokens against our /.well-known/jwks.json over HTTP (createRemoteJWKSet)', async (t) => {
  const keys = [signingKey('ES256', 'interop-es'), signingKey('RS256', 'interop-rs')]
  const { origin } = await serve(t, { secret: undefined, keys, refreshTokens: true })
  const jwks = jose.createRemoteJWKSet(new URL(`${origin}/.well-known/jwks.json`))
  const client = new ResourceOwnerPassword({ client: { id: 'spa', secret: '' }, auth: { tokenHost: origin, tokenPath: '/token' }, options: { authorizationMethod: 'body' } })
  const first = await client.getToken({ username: 'admin', password: 'admin-password' })
  const refreshed = await first.refresh()
  for (const token of [first, refreshed]) {
    const { payload, protectedHeader } = await jose.jwtVerify(token.token.access_token as string, jwks, {
      algorithms: ['ES256'],
      typ: 'at+jwt',
      issuer: ISSUER,
      audience: AUDIENCE,
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id']
    })
    t.same(protectedHeader, { alg: 'ES256', typ: 'at+jwt', kid: 'interop-es' }, 'the first key signs, and names itself')
    t.match(payload, { sub: '42', client_id: 'spa', scope: 'profile admin' })
  }
  // The second key is published for verifiers too; a token of another key set is not ours.
  const published = await (await fetch(`${origin}/.well-known/jwks.json`)).json() as { keys: Array<{ kid: string }> }
  t.same(published.keys.map((key) => key.kid), ['interop-es', 'interop-rs'])
  const strangerKey = signingKey('ES256', 'interop-stranger')
  const { origin: strangerOrigin } = await serve(t, { secret: undefined, keys: [{ ...strangerKey, kid: 'interop-es' }] })
  const stranger = await new ResourceOwnerPassword({ client: { id: 'spa', secret: '' }, auth: { tokenHost: strangerOrigin, tokenPath: '/token' }, options: { authorizationMethod: 'body' } })
    .getToken({ username: 'admin', password: 'admin-password' })
  await t.rejects(jose.jwtVerify(stranger.token.access_token as string, jwks, { algorithms: ['ES256'] }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' }, 'another key under our kid')
})
