import t from 'tap'
import { buildServer } from '../examples/server.js'
import { FORM, form } from './helper.js'

/*
 * The example server's service side: DEMO_CLIENT_SECRET registers `demo-service` (client
 * credentials with scope `reports`, and introspection), GET /reports, and the RFC 8414 metadata.
 * Without the variable, the user-facing contract is exactly what it was.
 */

const SECRET = 'example-test-secret-2f9c4e1a7b3d8f0e6c5a'
const QUIET = { LOG_LEVEL: 'silent', JWT_SECRET: SECRET }
const SERVICE = { authorization: 'Basic ' + Buffer.from('demo-service:demo-service-secret').toString('base64') }

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]
type App = Awaited<ReturnType<typeof buildServer>>
const post = (app: App, url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, headers: { ...FORM, ...headers }, payload: form(fields) })
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const clientIdOf = (token: string): unknown => JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).client_id

/** The contract the example had before services: password, refresh and revoke without client credentials. */
async function userContract (t: Tap, app: App): Promise<string> {
  const login = await post(app, '/token', { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(login.statusCode, 200)
  t.equal(clientIdOf(login.json().access_token), 'public')
  const refreshed = await post(app, '/token', { grant_type: 'refresh_token', refresh_token: login.json().refresh_token })
  t.equal(refreshed.statusCode, 200)
  t.equal(clientIdOf(refreshed.json().access_token), 'public')
  const access = refreshed.json().access_token as string
  t.equal((await app.inject({ url: '/protected', headers: bearer(access) })).statusCode, 200)
  const revoked = await post(app, '/revoke', { token: refreshed.json().refresh_token })
  t.equal(revoked.statusCode, 200)
  t.equal((await post(app, '/token', { grant_type: 'refresh_token', refresh_token: refreshed.json().refresh_token })).json().error, 'invalid_grant')
  // RFC 7009 §2.1: the example's access tokens are revocable, so they went with their family.
  t.equal((await app.inject({ url: '/protected', headers: bearer(access) })).statusCode, 401)
  const again = await post(app, '/token', { grant_type: 'password', username: 'user1', password: 'password1' })
  return again.json().access_token as string
}

t.test('without DEMO_CLIENT_SECRET: no service client, no introspection, /reports refuses every token', async (t) => {
  const app = await buildServer(QUIET)
  t.teardown(() => app.close())
  const access = await userContract(t, app)
  t.equal((await post(app, '/token', { grant_type: 'client_credentials' }, SERVICE)).json().error, 'unsupported_grant_type')
  t.equal((await post(app, '/introspect', { token: access }, SERVICE)).statusCode, 404)
  t.equal((await app.inject('/reports')).statusCode, 401)
  const denied = await app.inject({ url: '/reports', headers: bearer(access) })
  t.equal(denied.statusCode, 403)
  t.match(denied.headers['www-authenticate'], /error="insufficient_scope", .*scope="reports"/)
  const doc = (await app.inject('/.well-known/oauth-authorization-server')).json()
  t.same(doc.grant_types_supported, ['password', 'refresh_token'])
  t.same(doc.token_endpoint_auth_methods_supported, ['none'])
  t.notOk(doc.introspection_endpoint)
})

t.test('with DEMO_CLIENT_SECRET: demo-service gets a reports token, calls /reports and introspects; users are unchanged', async (t) => {
  const app = await buildServer({ ...QUIET, DEMO_CLIENT_SECRET: 'demo-service-secret' })
  t.teardown(() => app.close())
  const access = await userContract(t, app)

  const service = await post(app, '/token', { grant_type: 'client_credentials' }, SERVICE)
  t.equal(service.statusCode, 200)
  t.match(service.json(), { token_type: 'Bearer', scope: 'reports' })
  t.notOk(service.json().refresh_token)
  const reports = await app.inject({ url: '/reports', headers: bearer(service.json().access_token) })
  t.equal(reports.statusCode, 200)
  t.equal(reports.json().client, 'demo-service')
  t.equal((await app.inject({ url: '/reports', headers: bearer(access) })).statusCode, 403, 'a user token has no reports scope')

  const introspected = await post(app, '/introspect', { token: access }, SERVICE)
  t.match(introspected.json(), { active: true, sub: 'user1', client_id: 'public', scope: 'profile', iss: 'http://127.0.0.1:3000' })
  t.equal((await post(app, '/introspect', { token: access })).statusCode, 401, 'only the service may introspect')
  const anonymous = await post(app, '/token', { grant_type: 'client_credentials' })
  t.equal(anonymous.statusCode, 401, 'not the public client: the grant needs client authentication (RFC 6749 §4.4.2)')
  t.equal(anonymous.json().error, 'invalid_client')
  t.match(anonymous.headers['www-authenticate'], /^Basic /)
  const wrong = await post(app, '/token', { grant_type: 'client_credentials' }, { authorization: 'Basic ' + Buffer.from('demo-service:nope').toString('base64') })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.headers['www-authenticate'], /^Basic /)

  const doc = (await app.inject('/.well-known/oauth-authorization-server')).json()
  t.match(doc, {
    issuer: 'http://127.0.0.1:3000',
    introspection_endpoint: 'http://127.0.0.1:3000/introspect',
    grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none']
  })
  t.ok((doc.scopes_supported as string[]).includes('reports'))

  // The OpenAPI document describes the scope, the flow and the new routes.
  const api = (await app.inject('/docs/json')).json()
  const scheme = api.components.securitySchemes.OAuth2PasswordBearer
  t.match(scheme.flows.clientCredentials, { tokenUrl: '/token', scopes: { reports: /reports/ } })
  t.same(api.paths['/reports'].get.security, [{ OAuth2PasswordBearer: ['reports'] }])
  t.ok(api.paths['/introspect'].post)
  t.ok(api.paths['/.well-known/oauth-authorization-server'].get)
})
