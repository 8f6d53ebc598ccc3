import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp, cheapHash, tokenRequest, type LooseOptions } from './helper.js'
import { signingKey } from './key-fixtures.js'
import type { ClientRecord } from '../lib/index.js'

/* Authorization server metadata, RFC 8414. */

const WELL_KNOWN = '/.well-known/oauth-authorization-server'

async function clients (): Promise<ClientRecord[]> {
  return [
    { id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true },
    { id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['client_credentials'], scopes: ['reports', 'profile'] }
  ]
}

async function metadata (app: FastifyInstance, url = WELL_KNOWN, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await app.inject({ url, headers })
  if (res.statusCode !== 200) throw new Error(`metadata: ${res.statusCode} ${res.body}`)
  return res.json()
}

t.test('every member derived from the options, the issuer exactly as configured, cacheable', async (t) => {
  const app = await buildApp(t, {
    plugin: {
      secret: undefined,
      keys: [signingKey('ES256', 'k1')],
      issuer: 'https://auth.example',
      clients: await clients(),
      publicClient: true,
      refreshTokens: true,
      scopes: { profile: 'Read your profile', admin: 'Administer' }
    }
  })
  const res = await app.inject({ url: WELL_KNOWN })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.headers['cache-control'], 'public, max-age=3600')
  t.same(res.json(), {
    issuer: 'https://auth.example',
    token_endpoint: 'https://auth.example/token',
    jwks_uri: 'https://auth.example/.well-known/jwks.json',
    scopes_supported: ['profile', 'admin', 'reports'],
    response_types_supported: [],
    grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    revocation_endpoint: 'https://auth.example/revoke',
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    introspection_endpoint: 'https://auth.example/introspect',
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post']
  })
  t.equal((await app.inject({ method: 'HEAD', url: WELL_KNOWN })).statusCode, 200)
})

t.test('the URLs come from the issuer, never from Host or X-Forwarded-* (a client chooses those)', async (t) => {
  const app = await buildApp(t, { plugin: { issuer: 'https://auth.example' }, server: { trustProxy: true } })
  const honest = await metadata(app)
  const attempts: Array<Record<string, string>> = [
    { host: 'evil.example' },
    { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' },
    { 'x-forwarded-host': 'evil.example:8443' }
  ]
  for (const headers of attempts) {
    const doc = await metadata(app, WELL_KNOWN, headers)
    t.same(doc, honest)
    t.notOk(JSON.stringify(doc).includes('evil'))
  }
  // Query strings and extra headers change nothing either.
  t.same(await metadata(app, `${WELL_KNOWN}?issuer=https://evil.example`), honest)
})

t.test('the smallest server: the password grant, no client authentication, no JWKS, no scopes', async (t) => {
  const app = await buildApp(t, { plugin: { issuer: 'http://127.0.0.1:3000' } })
  t.same(await metadata(app), {
    issuer: 'http://127.0.0.1:3000',
    token_endpoint: 'http://127.0.0.1:3000/token',
    response_types_supported: [],
    grant_types_supported: ['password'],
    token_endpoint_auth_methods_supported: ['none']
  })
})

t.test('the authentication methods follow the clients: secrets, public clients, or both', async (t) => {
  const secretHash = await cheapHash('web-secret')
  const cases: Array<[ClientRecord[], boolean, string[]]> = [
    [[{ id: 'web', secretHash }], false, ['client_secret_basic', 'client_secret_post']],
    [[{ id: 'spa' }], false, ['none']],
    [[{ id: 'web', secretHash }, { id: 'spa' }], false, ['client_secret_basic', 'client_secret_post', 'none']],
    [[{ id: 'web', secretHash }], true, ['client_secret_basic', 'client_secret_post', 'none']]
  ]
  for (const [list, publicClient, methods] of cases) {
    const app = await buildApp(t, { plugin: { issuer: 'https://auth.example', clients: list, publicClient, revocableAccessTokens: true } })
    const doc = await metadata(app)
    t.same(doc.token_endpoint_auth_methods_supported, methods)
    t.same(doc.revocation_endpoint_auth_methods_supported, methods)
    t.notOk(doc.introspection_endpoint, 'no client may introspect')
  }
})

t.test('an issuer with a path: the well-known path is inserted before it (RFC 8414 §3.1)', async (t) => {
  for (const issuer of ['https://auth.example/tenant/one', 'https://auth.example/tenant/one/']) {
    const app = await buildApp(t, { plugin: { issuer } })
    const doc = await metadata(app, `${WELL_KNOWN}/tenant/one`)
    t.equal(doc.issuer, issuer, 'exactly the configured issuer, trailing slash and all')
    t.equal(doc.token_endpoint, 'https://auth.example/token', 'endpoint URLs: the issuer\'s origin and the route\'s own path')
    t.equal((await app.inject({ url: WELL_KNOWN })).statusCode, 404)
    t.equal((await app.inject({ url: `/tenant/one${WELL_KNOWN}` })).statusCode, 404)
  }
})

t.test('the prefix applies to the endpoints and their URLs, not to the metadata\'s own path', async (t) => {
  const app = await buildApp(t, {
    plugin: { issuer: 'https://auth.example', prefix: '/auth', clients: await clients(), secret: undefined, keys: [signingKey('RS256', 'r1')], revocableAccessTokens: true }
  })
  const doc = await metadata(app)
  t.match(doc, {
    token_endpoint: 'https://auth.example/auth/token',
    revocation_endpoint: 'https://auth.example/auth/revoke',
    introspection_endpoint: 'https://auth.example/auth/introspect',
    jwks_uri: 'https://auth.example/auth/.well-known/jwks.json'
  })
  t.equal((await app.inject({ url: `/auth${WELL_KNOWN}` })).statusCode, 404)
  // Every URL it gives leads to the endpoint.
  for (const key of ['token_endpoint', 'revocation_endpoint', 'introspection_endpoint']) {
    const path = new URL(doc[key] as string).pathname
    t.not((await tokenRequest(app, {}, {}, path)).statusCode, 404, `${key} is served`)
  }
  t.equal((await app.inject({ url: new URL(doc.jwks_uri as string).pathname })).statusCode, 200)
})

t.test('not served without an http(s) issuer, or with metadata: false', async (t) => {
  const cases: LooseOptions[] = [{}, { issuer: 'my-issuer' }, { issuer: 'urn:example:issuer' }, { issuer: 'https://auth.example?x=1' }, { issuer: 'https://auth.example#f' }, { issuer: 'https://auth.example', metadata: false }]
  for (const plugin of cases) {
    const app = await buildApp(t, { plugin })
    t.equal((await app.inject({ url: WELL_KNOWN })).statusCode, 404, JSON.stringify(plugin))
  }
  // Nor without a token endpoint (verify-only mode).
  const verifier = await buildApp(t, { plugin: { issuer: 'https://auth.example', findUser: undefined } })
  t.equal((await verifier.inject({ url: WELL_KNOWN })).statusCode, 404)
})

t.test('metadata: true with an issuer it cannot be built from, or a metadata that is not a boolean, is refused', async (t) => {
  for (const plugin of [{ metadata: true }, { metadata: true, issuer: 'my-issuer' }, { metadata: true, issuer: 'ftp://auth.example' }, { metadata: 'yes' as never, issuer: 'https://auth.example' }] as LooseOptions[]) {
    await t.rejects(buildApp(t, { plugin }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message: /metadata/ }, JSON.stringify(plugin))
  }
})

t.test('the advertised token endpoint gives the advertised grant', async (t: Test) => {
  const app = await buildApp(t, { plugin: { issuer: 'https://auth.example', clients: await clients() } })
  const doc = await metadata(app)
  t.ok((doc.grant_types_supported as string[]).includes('client_credentials'))
  const res = await tokenRequest(app, { grant_type: 'client_credentials', client_id: 'svc', client_secret: 'svc-secret' }, {}, new URL(doc.token_endpoint as string).pathname)
  t.equal(res.statusCode, 200)
})
