import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { APP, PKG, runInApp } from './app.js'

/*
 * ESM and CommonJS consumers of the packed tarball, installed into an app: the same plugin
 * function either way, with `.default` and the named exports, and a login through it.
 */

const SECRET = 'release-check-secret-0f8e2d6c4a9b1e7f3d5c'

/** The body both consumers run once they hold the plugin: register, log in, print the facts. */
const LOGIN = `
  const passwordHash = await named.hashPassword('pw', { memoryCost: 256 })
  const app = Fastify()
  await app.register(plugin, {
    secret: ${JSON.stringify(SECRET)},
    findUser: async (username) => username === 'u' ? { username, passwordHash } : null,
    password: { memoryCost: 256 }
  })
  app.get('/me', { preHandler: app.authenticate }, async (request) => ({ sub: request.user.sub }))
  const token = await app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=password&username=u&password=pw' })
  const me = await app.inject({ url: '/me', headers: { authorization: 'Bearer ' + token.json().access_token } })
  console.log(JSON.stringify({
    type: typeof plugin,
    isDefault: plugin.default === plugin,
    alias: plugin.fastifyTokenAuth === plugin,
    names: Object.keys(named).filter((name) => name !== 'default').sort(),
    token: token.statusCode,
    me: me.json()
  }))
  await app.close()
`

const EXPECTED_NAMES = ['HashingBusyError', 'MAX_FAMILIES_PER_USER', 'StoreFullError', 'StoreUnavailableError', 'createMemoryStore', 'createPostgresStore', 'createRedisStore', 'createSplitStore',
  'fastifyTokenAuth', 'hashPassword', 'migratePostgresStore', 'needsRehash', 'notFoundHandler', 'postgresStoreMigrationSql', 'requestLogSerializer', 'verifyPassword']

t.test('CommonJS: require() is the plugin function, with .default and the named exports', async (t) => {
  writeFileSync(join(APP, 'consumer.cjs'), `'use strict'
const Fastify = require('fastify')
const plugin = require(${JSON.stringify(PKG.name)})
const named = plugin
;(async () => {${LOGIN}})()
`)
  const result = JSON.parse(await runInApp('consumer.cjs'))
  t.equal(result.type, 'function')
  t.ok(result.isDefault)
  t.ok(result.alias)
  t.same(result.names, EXPECTED_NAMES)
  t.equal(result.token, 200)
  t.same(result.me, { sub: 'u' })
})

t.test('ESM: the default import is the plugin function, the same as the named export', async (t) => {
  writeFileSync(join(APP, 'consumer.mjs'), `import Fastify from 'fastify'
import plugin, * as named from ${JSON.stringify(PKG.name)}
${LOGIN}`)
  const result = JSON.parse(await runInApp('consumer.mjs'))
  t.equal(result.type, 'function')
  t.ok(result.isDefault)
  t.ok(result.alias)
  t.same(result.names, EXPECTED_NAMES)
  t.equal(result.token, 200)
  t.same(result.me, { sub: 'u' })
})

t.test('the installed command (what npx runs) prints the version', async (t) => {
  t.equal(await runInApp(`node_modules/.bin/${PKG.name}`, ['--version']), PKG.version + '\n')
})
