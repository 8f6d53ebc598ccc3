import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { ClientCredentials, ResourceOwnerPassword } from 'simple-oauth2'
import * as oidc from 'openid-client'
import tokenAuth, { hashPassword, type FastifyTokenAuthOptions } from '../lib/index.js'
import { CHEAP, SECRET, demoUsers, freePort } from './helper.js'

/*
 * Interop for services and resource servers, with clients we did not write, against a real
 * server on 127.0.0.1: simple-oauth2's ClientCredentials gets a token and calls a route that
 * needs its scope; openid-client discovers the server from its RFC 8414 metadata, then uses the
 * client credentials grant and RFC 7662 introspection through the endpoints it found there.
 */

const SERVICE = { id: 'report-service', secret: 'r3port:s+cret /%' }
const RESOURCE_SERVER = { id: 'resource-server', secret: 'rs-secret' }

async function serve (t: Test): Promise<string> {
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, {
    secret: SECRET,
    issuer: origin,
    audience: 'https://api.example',
    findUser: (username: string) => users.get(username) ?? null,
    password: { ...CHEAP },
    refreshTokens: true,
    publicClient: true,
    clients: [
      { id: SERVICE.id, secretHash: await hashPassword(SERVICE.secret, CHEAP), grants: ['client_credentials'], scopes: ['reports'] },
      { id: RESOURCE_SERVER.id, secretHash: await hashPassword(RESOURCE_SERVER.secret, CHEAP), introspect: true }
    ]
  } satisfies FastifyTokenAuthOptions)
  app.get('/reports', { preHandler: [app.authenticate, app.requireScopes('reports')] }, async (request) => ({ client: request.user.clientId }))
  await app.listen({ port, host: '127.0.0.1' })
  return origin
}

async function callReports (origin: string, token: string): Promise<{ status: number, body: unknown }> {
  const res = await fetch(`${origin}/reports`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.json() }
}

t.test('simple-oauth2 ClientCredentials: gets a token, calls /reports', async (t) => {
  const origin = await serve(t)
  for (const authorizationMethod of ['header', 'body'] as const) {
    const client = new ClientCredentials({
      client: SERVICE,
      auth: { tokenHost: origin, tokenPath: '/token' },
      options: { authorizationMethod }
    })
    const accessToken = await client.getToken({ scope: 'reports' })
    t.match(accessToken.token, { token_type: 'Bearer', expires_in: 900 }, `credentials in the ${authorizationMethod}`)
    t.notOk(accessToken.token.refresh_token, 'no refresh token (RFC 6749 §4.4.3)')
    t.same(await callReports(origin, accessToken.token.access_token as string), { status: 200, body: { client: SERVICE.id } })
  }
  // Its errors come back as the RFC 6749 §5.2 codes.
  const scopeError = await new ClientCredentials({ client: SERVICE, auth: { tokenHost: origin, tokenPath: '/token' } })
    .getToken({ scope: 'admin' }).then(() => null, (error: { output?: { statusCode: number }, data?: { payload?: unknown } }) => error)
  t.equal(scopeError?.output?.statusCode, 400)
  t.match(scopeError?.data?.payload, { error: 'invalid_scope' })
  const badSecret = await new ClientCredentials({ client: { id: SERVICE.id, secret: 'nope' }, auth: { tokenHost: origin, tokenPath: '/token' } })
    .getToken({}).then(() => null, (error: { output?: { statusCode: number }, data?: { payload?: unknown } }) => error)
  t.equal(badSecret?.output?.statusCode, 401)
  t.match(badSecret?.data?.payload, { error: 'invalid_client' })
  // A confidential client cannot log users in with it: its grants list only client_credentials.
  const login = await new ResourceOwnerPassword({ client: SERVICE, auth: { tokenHost: origin, tokenPath: '/token' } })
    .getToken({ username: 'user1', password: 'password1' }).then(() => null, (error: { output?: { statusCode: number }, data?: { payload?: unknown } }) => error)
  t.equal(login?.output?.statusCode, 400)
  t.match(login?.data?.payload, { error: 'unauthorized_client' })
})

t.test('openid-client discovers the server from its RFC 8414 metadata, then gets and introspects tokens', async (t) => {
  const origin = await serve(t)
  // Plain HTTP on loopback, for the test only: openid-client requires https unless told.
  const options = { algorithm: 'oauth2' as const, execute: [oidc.allowInsecureRequests] }
  const resourceServer = await oidc.discovery(new URL(origin), RESOURCE_SERVER.id, RESOURCE_SERVER.secret, oidc.ClientSecretBasic(RESOURCE_SERVER.secret), options)
  const server = resourceServer.serverMetadata()
  t.equal(server.issuer, origin, 'the issuer matched the discovery URL (openid-client checks it)')
  t.equal(server.token_endpoint, `${origin}/token`)
  t.equal(server.introspection_endpoint, `${origin}/introspect`)

  const service = await oidc.discovery(new URL(origin), SERVICE.id, SERVICE.secret, oidc.ClientSecretPost(SERVICE.secret), options)
  const tokens = await oidc.clientCredentialsGrant(service, { scope: 'reports' })
  t.equal(tokens.token_type, 'bearer', 'the answer passed openid-client\'s checks')
  t.notOk(tokens.refresh_token)
  const serviceToken = tokens.access_token
  t.equal((await callReports(origin, serviceToken)).status, 200)

  const introspected = await oidc.tokenIntrospection(resourceServer, serviceToken)
  t.match(introspected, { active: true, sub: SERVICE.id, client_id: SERVICE.id, scope: 'reports', token_type: 'Bearer', iss: origin, aud: 'https://api.example' })

  // A user's refresh token from the public client, and the same after it was revoked.
  const publicClient = new oidc.Configuration(server, 'public', undefined, oidc.None())
  oidc.allowInsecureRequests(publicClient)
  const login = await oidc.genericGrantRequest(publicClient, 'password', { username: 'user1', password: 'password1' })
  t.match(await oidc.tokenIntrospection(resourceServer, login.refresh_token as string, { token_type_hint: 'refresh_token' }),
    { active: true, username: 'user1', token_type: 'refresh_token', client_id: 'public' })
  await oidc.tokenRevocation(publicClient, login.refresh_token as string)
  t.same(await oidc.tokenIntrospection(resourceServer, login.refresh_token as string), { active: false })
  t.same(await oidc.tokenIntrospection(resourceServer, 'not-a-token'), { active: false })

  // A client that may not introspect gets the 401 challenge, as openid-client surfaces it.
  const refused = await oidc.tokenIntrospection(service, serviceToken).catch((e: unknown) => e)
  t.ok(refused instanceof oidc.WWWAuthenticateChallengeError)
  t.match(refused, { status: 401, cause: [{ scheme: 'basic' }] })
})
