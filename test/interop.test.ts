import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { ResourceOwnerPassword } from 'simple-oauth2'
import * as oidc from 'openid-client'
import * as jose from 'jose'
import { buildApp, CHEAP, SECRET } from './helper.js'
import { hashPassword } from '../lib/index.js'

/*
 * Interop with OAuth2 clients and a JWT library we did not write, against a real server on
 * 127.0.0.1: simple-oauth2's ResourceOwnerPassword, openid-client's generic grant (v6 has no
 * password-grant helper of its own, but sends any grant type through `genericGrantRequest` and
 * validates the answer strictly), and jose verifying our access tokens independently.
 * Refresh through both clients joins once refresh tokens exist.
 */

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'
// RFC 6749 §2.3.1: the client id and secret are form-urlencoded before HTTP Basic. Characters that
// differ between encoders show whether both sides read the spec the same way.
const CLIENT_ID = 'web app+1'
const CLIENT_SECRET = 'p@ss:w rd+/%~&='

async function serve (t: Test): Promise<{ app: FastifyInstance, origin: string }> {
  const app = await buildApp(t, {
    plugin: {
      issuer: ISSUER,
      audience: AUDIENCE,
      clients: [{ id: CLIENT_ID, secretHash: await hashPassword(CLIENT_SECRET, CHEAP) }, { id: 'spa' }]
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
  const scopeError = await oidc.genericGrantRequest(spa, 'password', { username: 'user1', password: 'password1', scope: 'admin' }).catch((e: unknown) => e)
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
