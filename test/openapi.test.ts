import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance } from 'fastify'
import swagger, { type SwaggerOptions } from '@fastify/swagger'
import { validate } from '@readme/openapi-parser'
import tokenAuth, { type FastifyTokenAuthOptions } from '../lib/index.js'
import { bearer, buildApp, CHEAP, cheapHash, demoUsers, login, SECRET, tokenRequest, type LooseOptions } from './helper.js'

/*
 * With @fastify/swagger registered, the plugin documents its token endpoint, adds the OAuth2
 * password-flow security scheme (the "Authorize" button of Swagger UI) and marks every route
 * that uses `authenticate` or `requireScopes` with the security requirement and its scopes.
 */

type Doc = Record<string, any>

const OPENAPI: SwaggerOptions = { openapi: { openapi: '3.0.3', info: { title: 'test', version: '1.0.0' } } }
const SCHEME = 'OAuth2PasswordBearer'

interface AppOptions {
  swaggerOptions?: SwaggerOptions | false
  plugin?: LooseOptions
  /** Registers the plugin and its routes inside an encapsulated scope with this prefix. */
  scopePrefix?: string
  routes?: (app: FastifyInstance) => void
}

/** An app with @fastify/swagger registered first, the plugin, and routes; ready, closed at teardown. */
async function docsApp (t: Test, { swaggerOptions = OPENAPI, plugin = {}, scopePrefix, routes }: AppOptions = {}): Promise<FastifyInstance> {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  if (swaggerOptions !== false) await app.register(swagger, swaggerOptions)
  async function api (scope: FastifyInstance): Promise<void> {
    await scope.register(tokenAuth, {
      secret: SECRET,
      findUser: async (username: string) => users.get(username) ?? null,
      password: { ...CHEAP },
      ...plugin
    } as FastifyTokenAuthOptions)
    scope.get('/public', async () => ({ ok: true }))
    scope.get('/protected', { preHandler: scope.authenticate }, async (request) => ({ sub: request.user.sub }))
    scope.get('/admin', { preHandler: [scope.authenticate, scope.requireScopes('admin')] }, async () => ({ admin: true }))
    routes?.(scope)
  }
  if (scopePrefix === undefined) await api(app)
  else await app.register(api, { prefix: scopePrefix })
  await app.ready()
  return app
}

/** The document, checked by a maintained OpenAPI / Swagger validator. */
async function validDocument (t: Test, app: FastifyInstance): Promise<Doc> {
  const doc = app.swagger() as Doc
  // The validator dereferences in place; it gets a copy.
  const result = await validate(structuredClone(doc) as Parameters<typeof validate>[0])
  t.same(result.valid ? [] : result.errors, [], 'the document validates')
  t.ok(result.valid, `valid ${result.specification} document`)
  return doc
}

/** Every security requirement names a defined scheme, and every scope it asks for is declared. */
function checkRequirements (t: Test, doc: Doc): void {
  const schemes: Record<string, Doc> = doc.components?.securitySchemes ?? doc.securityDefinitions ?? {}
  for (const [path, item] of Object.entries(doc.paths as Record<string, Doc>)) {
    for (const [method, operation] of Object.entries(item)) {
      for (const requirement of (operation.security ?? []) as Array<Record<string, string[]>>) {
        for (const [name, scopes] of Object.entries(requirement)) {
          const scheme = schemes[name]
          t.ok(scheme, `${method} ${path}: scheme ${name} is defined`)
          const declared = scheme?.flows?.password?.scopes ?? scheme?.scopes ?? {}
          for (const scope of scopes) t.ok(Object.hasOwn(declared, scope), `${method} ${path}: scope ${scope} is declared`)
        }
      }
    }
  }
}

t.test('@fastify/swagger first: the scheme, the token endpoint and the protected routes, as valid OpenAPI 3', async (t) => {
  const app = await docsApp(t, { plugin: { scopes: { profile: 'Read your profile', admin: 'Administer users' } } })
  const doc = await validDocument(t, app)
  checkRequirements(t, doc)

  t.same(doc.components.securitySchemes[SCHEME], {
    type: 'oauth2',
    flows: { password: { tokenUrl: '/token', scopes: { profile: 'Read your profile', admin: 'Administer users' } } },
    description: doc.components.securitySchemes[SCHEME].description
  })
  t.type(doc.components.securitySchemes[SCHEME].description, 'string')

  t.same(doc.paths['/protected'].get.security, [{ [SCHEME]: [] }], 'authenticate: the bearer token, no scope')
  t.same(doc.paths['/admin'].get.security, [{ [SCHEME]: ['admin'] }], 'requireScopes: the scopes it checks')
  t.notOk(doc.paths['/public'].get.security, 'a public route has no requirement')

  // The token endpoint: POST only (the 405 answer to other methods is not an operation).
  t.same(Object.keys(doc.paths['/token']), ['post'])
  const token = doc.paths['/token'].post
  t.notOk(token.security, 'the token endpoint needs no bearer token')
  const form = token.requestBody.content['application/x-www-form-urlencoded'].schema
  t.same(form.required, ['grant_type', 'username', 'password'])
  t.same(form.properties.grant_type.enum, ['password'])
  t.equal(form.properties.password.format, 'password', 'Swagger UI masks it')
  t.ok(form.properties.scope)
  t.notOk(form.properties.client_id, 'no client fields without `clients`')
  t.same(Object.keys(token.responses).sort(), ['200', '400', '429', '503'])
  const success = token.responses['200']
  t.same(success.content['application/json'].schema.required, ['access_token', 'token_type', 'expires_in'])
  t.same(success.headers['cache-control'].schema.enum, ['no-store'])
  t.same(token.responses['400'].content['application/json'].schema.properties.error.enum,
    ['invalid_request', 'invalid_grant', 'unsupported_grant_type', 'invalid_scope'])
  t.same(token.responses['429'].content['application/json'].schema.properties.error.enum, ['too_many_requests'])
  t.ok(token.responses['429'].headers['retry-after'])
  t.same(token.responses['503'].content['application/json'].schema.properties.error.enum, ['temporarily_unavailable'])

  // The document says what the endpoint really answers.
  const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(res.statusCode, 200)
  const documented = Object.keys(success.content['application/json'].schema.properties)
  t.same(Object.keys(res.json()).filter((key) => !documented.includes(key)), [], 'every field of the answer is documented')
  t.equal(res.headers['cache-control'], 'no-store')
  const bad = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'wrong' })
  t.equal(bad.statusCode, 400)
  t.ok(token.responses['400'].content['application/json'].schema.properties.error.enum.includes(bad.json().error))

  // Documenting changes nothing at run time.
  const access = await login(app)
  t.equal((await app.inject({ url: '/protected', headers: bearer(access) })).statusCode, 200)
  t.equal((await app.inject({ url: '/admin', headers: bearer(access) })).statusCode, 403)
  t.equal((await app.inject({ url: '/token' })).statusCode, 405)
})

t.test('the tokenUrl is the real path: the plugin prefix, the scope prefix and tokenPath', async (t) => {
  const app = await docsApp(t, { scopePrefix: '/api', plugin: { prefix: '/auth', tokenPath: '/login' } as LooseOptions })
  const doc = await validDocument(t, app)
  t.equal(doc.components.securitySchemes[SCHEME].flows.password.tokenUrl, '/api/auth/login')
  t.ok(doc.paths['/api/auth/login'].post)
  t.same(doc.paths['/api/protected'].get.security, [{ [SCHEME]: [] }])
  t.equal((await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' }, {}, '/api/auth/login')).statusCode, 200)
})

t.test('scopes that routes require are declared in the flow, after the configured ones', async (t) => {
  const app = await docsApp(t, {
    plugin: { scopes: { profile: 'Read your profile' } },
    routes (app) {
      app.get('/reports', { onRequest: app.requireScopes('reports:read', 'profile') }, async () => ({}))
      app.get('/hooks', { onRequest: [app.authenticate], preValidation: app.requireScopes('__proto__') }, async () => ({}))
      app.post('/both', { preHandler: [app.requireScopes('admin'), app.requireScopes('reports:read')] }, async () => ({}))
    }
  })
  const doc = await validDocument(t, app)
  checkRequirements(t, doc)
  const declared = doc.components.securitySchemes[SCHEME].flows.password.scopes
  t.same(Object.keys(declared), ['profile', 'admin', 'reports:read', '__proto__'])
  t.equal(declared.profile, 'Read your profile')
  t.equal(declared.admin, '')
  t.same(doc.paths['/reports'].get.security, [{ [SCHEME]: ['reports:read', 'profile'] }], 'onRequest counts too')
  t.same(doc.paths['/hooks'].get.security, [{ [SCHEME]: ['__proto__'] }], 'hooks across onRequest and preValidation add up')
  t.same(doc.paths['/both'].post.security, [{ [SCHEME]: ['admin', 'reports:read'] }])
})

t.test('what the host wrote itself is kept, and a shared schema object is not changed', async (t) => {
  // Fastify marks the schemas it has seen, so this one cannot be frozen; it is checked afterwards.
  const shared = { summary: 'shared', response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } }
  const app = await docsApp(t, {
    swaggerOptions: {
      openapi: {
        ...OPENAPI.openapi,
        components: {
          securitySchemes: {
            apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' }
          }
        }
      }
    },
    routes (app) {
      app.get('/mixed', { preHandler: app.authenticate, schema: { security: [{ apiKey: [] }] } as object }, async () => ({}))
      app.get('/shared-public', { schema: shared }, async () => ({ ok: true }))
      app.get('/shared-protected', { schema: shared, preHandler: app.authenticate }, async () => ({ ok: true }))
    }
  })
  const doc = await validDocument(t, app)
  t.same(doc.paths['/mixed'].get.security, [{ apiKey: [] }], 'a requirement the host wrote is not replaced')
  t.ok(doc.components.securitySchemes.apiKey, 'the host\'s schemes stay')
  t.ok(doc.components.securitySchemes[SCHEME], 'next to ours')
  t.notOk(doc.paths['/shared-public'].get.security, 'a public route sharing the schema stays public')
  t.same(doc.paths['/shared-protected'].get.security, [{ [SCHEME]: [] }])
  t.equal(doc.paths['/shared-protected'].get.summary, 'shared', 'the rest of the schema is kept')
  t.notOk('security' in shared)
  // The response schema still serializes the route's answer.
  t.same((await app.inject('/shared-public')).json(), { ok: true })
})

t.test('a security scheme of the same name that the host defined is left as it is', async (t) => {
  const mine = { type: 'oauth2' as const, flows: { password: { tokenUrl: 'https://auth.example/token', scopes: {} } } }
  const options: SwaggerOptions = { openapi: { ...OPENAPI.openapi, components: { securitySchemes: { [SCHEME]: mine } } } }
  const app = await docsApp(t, { swaggerOptions: options })
  const doc = app.swagger() as Doc
  t.same(doc.components.securitySchemes[SCHEME], mine)
  t.same(Object.keys((options as Doc).openapi.components.securitySchemes), [SCHEME], 'the host\'s options are not changed')
})

t.test('clients and limits are reflected in the token endpoint\'s documentation', async (t) => {
  const app = await docsApp(t, {
    plugin: { clients: [{ id: 'web' }], rateLimit: false, loginThrottle: false }
  })
  const doc = await validDocument(t, app)
  const token = doc.paths['/token'].post
  const form = token.requestBody.content['application/x-www-form-urlencoded'].schema
  t.ok(form.properties.client_id)
  t.equal(form.properties.client_secret.format, 'password')
  t.same(token.responses['401'].content['application/json'].schema.properties.error.enum, ['invalid_client'])
  t.notOk(token.responses['429'], 'no 429 when nothing is limited')
  t.match(token.description, /HTTP Basic/)
})

t.test('Swagger 2 documents get the scheme as a security definition', async (t) => {
  const app = await docsApp(t, {
    swaggerOptions: { swagger: { info: { title: 'test', version: '1.0.0' } } },
    plugin: { scopes: { profile: 'Read your profile' } }
  })
  const doc = await validDocument(t, app)
  checkRequirements(t, doc)
  t.equal(doc.swagger, '2.0')
  t.same(doc.securityDefinitions[SCHEME], {
    type: 'oauth2',
    flow: 'password',
    tokenUrl: '/token',
    scopes: { profile: 'Read your profile', admin: '' },
    description: doc.securityDefinitions[SCHEME].description
  })
  t.same(doc.paths['/admin'].get.security, [{ [SCHEME]: ['admin'] }])
})

t.test('@fastify/swagger registered after the plugin is refused at start-up, with the fix', async (t) => {
  const users = await demoUsers()
  const register = { secret: SECRET, findUser: async (u: string) => users.get(u) ?? null, password: { ...CHEAP } }

  const late = Fastify()
  t.teardown(() => late.close())
  await late.register(tokenAuth, register)
  await late.register(swagger, OPENAPI)
  late.get('/protected', { preHandler: late.authenticate }, async () => ({}))
  await t.rejects(async () => { await late.ready() }, { code: 'FST_TOKEN_AUTH_SWAGGER_ORDER' })

  // `openapi: false` is the way out: the plugin leaves the document alone.
  const off = Fastify()
  t.teardown(() => off.close())
  await off.register(tokenAuth, { ...register, openapi: false })
  await off.register(swagger, OPENAPI)
  off.get('/protected', { preHandler: off.authenticate }, async () => ({}))
  await off.ready()
  const doc = await validDocument(t, off)
  t.notOk(doc.components.securitySchemes)
  t.notOk(doc.paths['/protected'].get.security)
})

t.test('@fastify/swagger registered at the root after a scope that has the plugin is refused too', async (t) => {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(async (api) => {
    await api.register(tokenAuth, { secret: SECRET, findUser: async (u: string) => users.get(u) ?? null, password: { ...CHEAP } })
    api.get('/protected', { preHandler: api.authenticate }, async () => ({}))
  }, { prefix: '/api' })
  await app.register(swagger, OPENAPI)
  await t.rejects(async () => { await app.ready() }, { code: 'FST_TOKEN_AUTH_SWAGGER_ORDER' })
})

t.test('instances in sibling scopes each get a scheme of their own, with their own token URL', async (t) => {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(swagger, OPENAPI)
  for (const [prefix, secret] of [['/a', SECRET], ['/b', `${SECRET}-b`]]) {
    await app.register(async (api) => {
      await api.register(tokenAuth, { secret, findUser: async (u: string) => users.get(u) ?? null, password: { ...CHEAP } })
      api.get('/protected', { preHandler: api.authenticate }, async () => ({}))
    }, { prefix })
  }
  await app.ready()
  const doc = await validDocument(t, app)
  checkRequirements(t, doc)
  const schemes = doc.components.securitySchemes
  t.same(Object.keys(schemes).sort(), [SCHEME, `${SCHEME}2`])
  t.equal(schemes[SCHEME].flows.password.tokenUrl, '/a/token')
  t.equal(schemes[`${SCHEME}2`].flows.password.tokenUrl, '/b/token')
  t.same(doc.paths['/a/protected'].get.security, [{ [SCHEME]: [] }])
  t.same(doc.paths['/b/protected'].get.security, [{ [`${SCHEME}2`]: [] }])
  // Each scheme's token URL gives tokens that its routes take, and the other's refuse.
  const token = (await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' }, {}, '/b/token')).json().access_token as string
  t.equal((await app.inject({ url: '/b/protected', headers: bearer(token) })).statusCode, 200)
  t.equal((await app.inject({ url: '/a/protected', headers: bearer(token) })).statusCode, 401)
  // A second document (a second app) starts again from the first name.
  const other = await docsApp(t)
  t.same(Object.keys((other.swagger() as Doc).components.securitySchemes), [SCHEME])
})

t.test('a @fastify/swagger under another decorator name: documented, each instance under a name of its own', async (t) => {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(swagger, { ...OPENAPI, decorator: 'apiDocs' })
  for (const prefix of ['/a', '/b']) {
    await app.register(async (api) => {
      await api.register(tokenAuth, { secret: SECRET, findUser: async (u: string) => users.get(u) ?? null, password: { ...CHEAP } })
      api.get('/protected', { preHandler: api.authenticate }, async () => ({}))
    }, { prefix })
  }
  await app.ready()
  const doc = (app as unknown as { apiDocs: () => Doc }).apiDocs()
  checkRequirements(t, doc)
  const schemes = doc.components.securitySchemes
  t.equal(Object.keys(schemes).length, 2, 'two schemes')
  const [first, second] = [doc.paths['/a/protected'].get.security[0], doc.paths['/b/protected'].get.security[0]].map((r: Doc) => Object.keys(r)[0] as string)
  t.not(first, second, 'the instances do not share a scheme name')
  t.equal(schemes[first as string].flows.password.tokenUrl, '/a/token')
  t.equal(schemes[second as string].flows.password.tokenUrl, '/b/token')
})

t.test('Swagger UI\'s empty client fields (Basic Og==) count as no client credentials', async (t) => {
  const clients = [{ id: 'web', secretHash: await cheapHash('web-secret') }]
  const basic = (value: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(value).toString('base64')}` })
  const login = { grant_type: 'password', username: 'user1', password: 'password1' }
  const open = await docsApp(t, { plugin: { clients, publicClient: true } })
  t.equal(basic(':').authorization, 'Basic Og==')
  t.equal((await tokenRequest(open, login, basic(':'))).statusCode, 200, 'the default public client')
  t.equal((await tokenRequest(open, login, { authorization: 'Basic Og' })).statusCode, 200, 'unpadded too')
  // Only both empty: an empty id with a secret is still malformed, and so is a lone id's wrong secret.
  t.equal((await tokenRequest(open, login, basic(':web-secret'))).statusCode, 401)
  t.equal((await tokenRequest(open, login, basic('web:wrong'))).statusCode, 401)
  t.equal((await tokenRequest(open, login, basic('web:web-secret'))).statusCode, 200)
  const closed = await docsApp(t, { plugin: { clients } })
  const refused = await tokenRequest(closed, login, basic(':'))
  t.equal(refused.statusCode, 401, 'without publicClient, no credentials are still refused')
  t.equal(refused.json().error_description, 'Client authentication is required')
})

t.test('openapi: false with @fastify/swagger first adds nothing', async (t) => {
  const app = await docsApp(t, { plugin: { openapi: false } })
  const doc = await validDocument(t, app)
  t.notOk(doc.components.securitySchemes)
  t.notOk(doc.paths['/protected'].get.security)
  t.notOk(doc.paths['/token'].post.summary, 'the token endpoint is not described')
})

t.test('without @fastify/swagger the host\'s route options are not touched', async (t) => {
  const schemas: unknown[] = []
  const app = await buildApp(t, {
    before: (app) => { app.addHook('onRoute', (route) => { if (route.url === '/protected') schemas.push(route.schema) }) }
  })
  t.same(schemas, [undefined, undefined], 'GET and HEAD /protected keep no schema')
  t.notOk(app.hasDecorator('swagger'))
})

t.test('without a token endpoint there is nothing to log in with, so nothing is added', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(swagger, OPENAPI)
  await app.register(tokenAuth, { secret: SECRET })
  app.get('/protected', { preHandler: app.authenticate }, async () => ({}))
  await app.ready()
  const doc = await validDocument(t, app)
  t.notOk(doc.components.securitySchemes)
  t.notOk(doc.paths['/protected'].get.security)
  t.notOk(doc.paths['/token'])
})

t.test('the scopes and openapi options are checked at registration', async (t) => {
  for (const [register, problem] of [
    [{ scopes: ['admin'] }, 'an array'],
    [{ scopes: null }, 'null'],
    [{ scopes: 'admin' }, 'a string'],
    [{ scopes: { 'two words': 'x' } }, 'a name that is no scope-token'],
    [{ scopes: { 'a"b': 'x' } }, 'a quote in a name'],
    [{ scopes: { admin: 1 } }, 'a description that is no string'],
    [{ openapi: 'yes' }, 'openapi not a boolean']
  ] as const) {
    const option = Object.keys(register)[0] as string
    await t.rejects(buildApp(t, { register }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message: new RegExp(`option "${option}"`) }, problem)
  }
  const app = await buildApp(t, { register: { scopes: { admin: 'Administer', profile: '' }, openapi: true } })
  t.equal((await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })).statusCode, 200)
})

t.test('@fastify/swagger is an optional peer, never installed for the user', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  t.ok(pkg.peerDependencies['@fastify/swagger'])
  t.same(pkg.peerDependenciesMeta['@fastify/swagger'], { optional: true })
  t.notOk(pkg.dependencies['@fastify/swagger'])
  t.notOk(pkg.dependencies['@fastify/swagger-ui'], 'Swagger UI is the host\'s choice')
})

t.test('with refresh tokens: the refresh grant on /token, and /revoke documented, as valid OpenAPI 3', async (t) => {
  const app = await docsApp(t, { plugin: { refreshTokens: true, clients: [{ id: 'web' }] } })
  const doc = await validDocument(t, app)
  checkRequirements(t, doc)

  const token = doc.paths['/token'].post
  const form = token.requestBody.content['application/x-www-form-urlencoded'].schema
  t.same(form.properties.grant_type.enum, ['password', 'refresh_token'])
  t.equal(form.properties.refresh_token.format, 'password', 'Swagger UI masks it')
  t.same(form.required, ['grant_type'], 'username and password are not required of a refresh')
  t.same(token.responses['200'].content['application/json'].schema.required, ['access_token', 'token_type', 'expires_in', 'refresh_token'])

  // /revoke: POST only (its 405 route is hidden), form fields, an empty 200, the errors.
  t.same(Object.keys(doc.paths['/revoke']), ['post'])
  const revoke = doc.paths['/revoke'].post
  t.notOk(revoke.security, 'the revocation endpoint needs no bearer token')
  const revokeForm = revoke.requestBody.content['application/x-www-form-urlencoded'].schema
  t.same(revokeForm.required, ['token'])
  t.same(Object.keys(revokeForm.properties), ['token', 'token_type_hint', 'client_id', 'client_secret'])
  t.same(revokeForm.properties.token_type_hint.enum, ['refresh_token', 'access_token'])
  t.same(Object.keys(revoke.responses).sort(), ['200', '400', '401', '429', '503'])
  t.match(revoke.responses['200'].content['application/json'].schema, { type: 'object', additionalProperties: false, description: String }, 'the 200 is an empty JSON object')
  t.same(revoke.responses['200'].headers['cache-control'].schema.enum, ['no-store'])
  const revokeErrors = revoke.responses['400'].content['application/json'].schema.properties.error.enum
  t.same(revokeErrors, ['invalid_request', 'unauthorized_client', 'unsupported_token_type'])
  t.same(revoke.responses['401'].content['application/json'].schema.properties.error.enum, ['invalid_client'])

  // The document says what the endpoints really answer.
  const client = { client_id: 'web' }
  const login = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1', ...client })
  t.equal(login.statusCode, 200)
  const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: login.json().refresh_token, ...client })
  t.equal(refreshed.statusCode, 200)
  const documented = Object.keys(token.responses['200'].content['application/json'].schema.properties)
  t.same(Object.keys(refreshed.json()).filter((key) => !documented.includes(key)), [], 'every field of a refresh answer is documented')
  const revoked = await tokenRequest(app, { token: refreshed.json().refresh_token, token_type_hint: 'refresh_token', ...client }, {}, '/revoke')
  t.equal(revoked.statusCode, 200)
  t.same(revoked.json(), {}, 'an empty object, as documented')
  const accessToken = await tokenRequest(app, { token: refreshed.json().access_token, ...client }, {}, '/revoke')
  t.equal(accessToken.statusCode, 400)
  t.ok(revokeErrors.includes(accessToken.json().error), `${accessToken.json().error as string} is documented`)
  t.equal((await app.inject({ url: '/revoke' })).statusCode, 405, 'the hidden route still answers')
})

t.test('/revoke with revocable access tokens alone, under prefixes, with no limit', async (t) => {
  const app = await docsApp(t, {
    scopePrefix: '/api',
    plugin: { prefix: '/auth', revocableAccessTokens: true, revocationPath: '/logout', rateLimit: false } as LooseOptions
  })
  const doc = await validDocument(t, app)
  t.notOk(doc.paths['/api/auth/revoke'])
  const revoke = doc.paths['/api/auth/logout'].post
  t.same(Object.keys(revoke.requestBody.content['application/x-www-form-urlencoded'].schema.properties), ['token', 'token_type_hint'], 'no client fields without `clients`')
  t.same(revoke.responses['400'].content['application/json'].schema.properties.error.enum, ['invalid_request', 'unauthorized_client'],
    'access tokens are revocable here, so no unsupported_token_type')
  t.same(Object.keys(revoke.responses).sort(), ['200', '400', '503'], 'no 401 without clients, no 429 without the per-IP limit')
  t.match(revoke.description, /access token/)
  t.notMatch(revoke.description, /refresh token/)
  // And the token endpoint knows nothing of refresh tokens.
  const form = doc.paths['/api/auth/token'].post.requestBody.content['application/x-www-form-urlencoded'].schema
  t.same(form.properties.grant_type.enum, ['password'])
  t.notOk(form.properties.refresh_token)
  const access = (await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' }, {}, '/api/auth/token')).json().access_token
  t.equal((await tokenRequest(app, { token: access }, {}, '/api/auth/logout')).statusCode, 200)
  t.equal((await app.inject({ url: '/api/protected', headers: bearer(access) })).statusCode, 401, 'revoked, as documented')
})

t.test('without refresh tokens or revocable access tokens there is no /revoke to document', async (t) => {
  const doc = await validDocument(t, await docsApp(t))
  t.notOk(doc.paths['/revoke'])
})

t.test('Swagger 2 documents get /revoke and the refresh grant too', async (t) => {
  const app = await docsApp(t, {
    swaggerOptions: { swagger: { info: { title: 'test', version: '1.0.0' } } },
    plugin: { refreshTokens: true, revocableAccessTokens: true }
  })
  const doc = await validDocument(t, app)
  t.same(Object.keys(doc.paths['/revoke']), ['post'])
  t.same(doc.paths['/revoke'].post.consumes, ['application/x-www-form-urlencoded'])
  t.same(doc.paths['/revoke'].post.parameters.map((p: Doc) => [p.name, p.in, p.required]),
    [['token', 'formData', true], ['token_type_hint', 'formData', false]])
  t.match(doc.paths['/revoke'].post.responses['200'].schema, { type: 'object', additionalProperties: false, description: String }, 'the 200 is an empty JSON object')
  const grant = doc.paths['/token'].post.parameters.find((p: Doc) => p.name === 'grant_type')
  t.same(grant.enum, ['password', 'refresh_token'])
})

t.test('client credentials, introspection and metadata: documented as they answer, as valid OpenAPI 3', async (t) => {
  const clients = [
    { id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['client_credentials' as const], scopes: ['reports', 'audit'] },
    { id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true }
  ]
  const app = await docsApp(t, {
    plugin: { issuer: 'https://auth.example', clients, publicClient: true, refreshTokens: true, scopes: { reports: 'Read the reports' } }
  })
  const doc = await validDocument(t, app)
  checkRequirements(t, doc)

  // The OAuth2 scheme has a clientCredentials flow beside the password flow, on the same token URL.
  const flows = doc.components.securitySchemes[SCHEME].flows
  t.same(Object.keys(flows), ['password', 'clientCredentials'])
  // Each flow lists the scopes it can grant: the users' (and those routes need), the clients'.
  t.same(flows.password, { tokenUrl: '/token', scopes: { reports: 'Read the reports', admin: '' } })
  t.same(flows.clientCredentials, { tokenUrl: '/token', scopes: { reports: 'Read the reports', audit: '' } })
  const audit = await tokenRequest(app, { grant_type: 'client_credentials', client_id: 'svc', client_secret: 'svc-secret', scope: 'audit' })
  t.equal(audit.statusCode, 200, 'a scope of the clientCredentials flow is granted to the client')
  t.equal((await tokenRequest(app, { grant_type: 'client_credentials', client_id: 'svc', client_secret: 'svc-secret', scope: 'admin' })).statusCode, 400,
    'a scope only users may have is refused to the client, and is not in its flow')
  t.match(doc.components.securitySchemes[SCHEME].description, /client credentials/)

  const token = doc.paths['/token'].post
  const form = token.requestBody.content['application/x-www-form-urlencoded'].schema
  t.same(form.properties.grant_type.enum, ['password', 'refresh_token', 'client_credentials'])
  t.same(form.required, ['grant_type'])
  t.same(token.responses['200'].content['application/json'].schema.required, ['access_token', 'token_type', 'expires_in'],
    'a client credentials answer has no refresh token')
  t.ok(token.responses['400'].content['application/json'].schema.properties.error.enum.includes('unauthorized_client'))
  const svc = await tokenRequest(app, { grant_type: 'client_credentials', client_id: 'svc', client_secret: 'svc-secret' })
  t.equal(svc.statusCode, 200)
  const refused = await tokenRequest(app, { grant_type: 'client_credentials' })
  t.equal(refused.statusCode, 401)
  t.ok(token.responses['401'].content['application/json'].schema.properties.error.enum.includes(refused.json().error), 'invalid_client without client authentication is documented')

  // /introspect: POST only, its form, its answers.
  t.same(Object.keys(doc.paths['/introspect']), ['post'])
  const introspect = doc.paths['/introspect'].post
  t.notOk(introspect.security)
  const introspectForm = introspect.requestBody.content['application/x-www-form-urlencoded'].schema
  t.same(introspectForm.required, ['token'])
  t.same(Object.keys(introspectForm.properties), ['token', 'token_type_hint', 'client_id', 'client_secret'])
  t.same(Object.keys(introspect.responses).sort(), ['200', '400', '401', '429', '503'])
  const active = await tokenRequest(app, { token: svc.json().access_token, client_id: 'rs', client_secret: 'rs-secret' }, {}, '/introspect')
  const documented = Object.keys(introspect.responses['200'].content['application/json'].schema.properties)
  t.same(Object.keys(active.json()).filter((key) => !documented.includes(key)), [], 'every member of the answer is documented')
  t.same(introspect.responses['200'].headers['cache-control'].schema.enum, ['no-store'])

  // The metadata route: a GET with its members.
  const metadata = doc.paths['/.well-known/oauth-authorization-server'].get
  const members = Object.keys(metadata.responses['200'].content['application/json'].schema.properties)
  const served = await app.inject('/.well-known/oauth-authorization-server')
  t.same(['issuer', 'token_endpoint', 'response_types_supported', 'grant_types_supported'].filter((key) => !members.includes(key)), [])
  t.same(Object.keys(served.json()).filter((key) => !members.includes(key) && !key.endsWith('_auth_methods_supported')), [])
})

t.test('the 429 of failed client authentications is documented where it is answered, even with no per-IP limit', async (t) => {
  const clients = [{ id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true }, { id: 'web', secretHash: await cheapHash('web-secret') }]
  const app = await docsApp(t, { plugin: { clients, refreshTokens: true, rateLimit: false, introspectionRateLimit: false } })
  const doc = await validDocument(t, app)
  for (const [path, client] of [['/revoke', 'web'], ['/introspect', 'rs']] as const) {
    const documented = doc.paths[path].post.responses['429']
    t.match(documented?.description, /failed client authentications/, `${path}: 429 documented`)
    const statuses: number[] = []
    for (let i = 0; i < 7; i++) statuses.push((await tokenRequest(app, { token: 'x', client_id: client, client_secret: 'wrong' }, {}, path)).statusCode)
    t.same(statuses.slice(-1), [429], `${path}: wrong secrets end in 429`)
  }
})

t.test('introspection without any limit documents no 429; Swagger 2 keeps the password flow alone', async (t) => {
  const clients = [{ id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true }, { id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['client_credentials' as const] }]
  const app = await docsApp(t, { plugin: { clients, rateLimit: false, introspectionRateLimit: false, loginThrottle: { perUsernameAndIp: false } } })
  const doc = await validDocument(t, app)
  t.notOk(doc.paths['/introspect'].post.responses['429'])
  t.ok(doc.paths['/token'].post.responses['429'], 'the per-username backoff alone still covers /token')
  const swagger2 = await docsApp(t, { swaggerOptions: { swagger: { info: { title: 'test', version: '1.0.0' } } }, plugin: { clients } })
  const doc2 = await validDocument(t, swagger2)
  t.equal(doc2.securityDefinitions[SCHEME].flow, 'password')
  t.ok(doc2.paths['/introspect'].post)
})

t.test('browser sessions: the signal header, the refresh token that may be in a cookie, and the 403', async (t) => {
  for (const swaggerOptions of [OPENAPI, { swagger: { info: { title: 'test', version: '1.0.0' } } }] as SwaggerOptions[]) {
    const app = await docsApp(t, { swaggerOptions, plugin: { refreshTokens: true, browserSessions: true } })
    const doc = await validDocument(t, app)
    const token = doc.paths['/token'].post
    const revoke = doc.paths['/revoke'].post
    for (const operation of [token, revoke]) {
      const header = (operation.parameters as Doc[]).find((p) => p.in === 'header')
      t.equal(header?.name, 'x-token-delivery', 'the signal header is a documented parameter')
      t.match(operation.description, /`__Host-refresh-token` cookie \(httpOnly\)/)
      t.ok(operation.responses['403'], 'the CSRF refusal')
    }
    const success = token.responses['200'].content?.['application/json'].schema ?? token.responses['200'].schema
    t.notOk(success.required.includes('refresh_token'), 'a browser session gets its refresh token in the cookie')
    t.type(success.properties.refresh_token, 'object')
    const form = revoke.requestBody?.content['application/x-www-form-urlencoded'].schema ?? { required: (revoke.parameters as Doc[]).filter((p) => p.in === 'formData' && p.required === true).map((p) => p.name) }
    t.notOk((form.required ?? []).includes('token'), 'a logout may carry its token in the cookie')
  }
  const off = await validDocument(t, await docsApp(t, { plugin: { refreshTokens: true } }))
  t.notOk((off.paths['/token'].post.parameters ?? []).some((p: Doc) => p.in === 'header'), 'no header without browser sessions')
  t.notOk(off.paths['/token'].post.responses['403'])
})
