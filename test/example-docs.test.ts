import t from 'tap'
import { readFileSync } from 'node:fs'
import { validate } from '@readme/openapi-parser'
import { buildServer } from '../examples/server.js'

// The example server serves Swagger UI at /docs and its OpenAPI document at /docs/json.

const SECRET = 'example-docs-secret-5d2b8f1c9e3a7d4b6f0a'

t.test('Swagger UI at /docs, the OpenAPI document at /docs/json', async (t) => {
  const app = await buildServer({ LOG_LEVEL: 'silent', JWT_SECRET: SECRET })
  t.teardown(() => app.close())

  const ui = await app.inject('/docs')
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /^text\/html/)
  t.match(ui.body, /swagger-ui/i)

  const res = await app.inject('/docs/json')
  t.equal(res.statusCode, 200)
  const doc = res.json()
  const result = await validate(structuredClone(doc))
  t.ok(result.valid, 'a valid OpenAPI document')
  t.match(doc.openapi, /^3\./)

  const flow = doc.components.securitySchemes.OAuth2PasswordBearer.flows.password
  t.equal(flow.tokenUrl, '/token')
  t.same(Object.keys(flow.scopes), ['profile', 'admin', 'reports'])
  t.ok(doc.paths['/token'].post, 'the token endpoint is documented')
  t.same(doc.paths['/token'].post.requestBody.content['application/x-www-form-urlencoded'].schema.properties.grant_type.enum, ['password', 'refresh_token'])
  t.same(Object.keys(doc.paths['/revoke']), ['post'], 'and the revocation endpoint, without its 405 route')
  t.same(doc.paths['/protected'].get.security, [{ OAuth2PasswordBearer: [] }])
  t.same(doc.paths['/me'].get.security, [{ OAuth2PasswordBearer: [] }])
  t.same(doc.paths['/admin'].get.security, [{ OAuth2PasswordBearer: ['admin'] }])
  t.same(doc.paths['/reports'].get.security, [{ OAuth2PasswordBearer: ['reports'] }])
  t.notOk(doc.paths['/introspect'], 'no introspection without DEMO_CLIENT_SECRET')
  t.notOk(doc.paths['/public'].get.security)
  t.notOk(doc.paths['/docs'], 'Swagger UI\'s own routes are not in the document')
})

t.test('the README\'s table of the example server\'s variables names every one the server reads', (t) => {
  const source = readFileSync(new URL('../examples/server.ts', import.meta.url), 'utf8')
  const read = new Set([...source.matchAll(/env\.([A-Z][A-Z0-9_]*)/g)].map((m) => m[1] as string))
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('## The example server'), readme.indexOf('Demo users'))
  const documented = new Set([...section.matchAll(/^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \|/gm)].flatMap((m) => (m[1] as string).split(', ').map((name) => name.slice(1, -1))))
  t.ok(read.size >= 15, `the server reads its variables as env.NAME (${read.size} found)`)
  t.same([...read].filter((name) => !documented.has(name)), [], 'each is in the table')
  t.same([...documented].filter((name) => !read.has(name)), [], 'and the table names no variable the server ignores')
  t.end()
})
