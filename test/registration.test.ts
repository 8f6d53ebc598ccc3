import t from 'tap'
import Fastify from 'fastify'
import tokenAuth from '../lib/index.js'
import { AlreadyRegisteredError } from '../lib/errors.js'
import { SECRET } from './helper.js'

/*
 * Registering the plugin: once per scope. A second registration where the first one's decorators
 * are visible fails at start-up with the plugin's own error, not Fastify's FST_ERR_DEC_ALREADY_PRESENT.
 */

t.test('a second registration in the same scope fails at start-up with FST_TOKEN_AUTH_ALREADY_REGISTERED', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(tokenAuth, { secret: SECRET })
  app.register(tokenAuth, { secret: SECRET })
  const error = await app.ready().then(() => undefined, (e: unknown) => e)
  t.ok(error instanceof AlreadyRegisteredError)
  t.match(error, { code: 'FST_TOKEN_AUTH_ALREADY_REGISTERED', message: /already registered in this scope/ })
})

t.test('so does a registration in a child of a scope that has it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, { secret: SECRET })
  app.register(async (child) => { await child.register(tokenAuth, { secret: SECRET }) })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_TOKEN_AUTH_ALREADY_REGISTERED' })
})

t.test('sibling scopes may each have their own', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  for (const prefix of ['/a', '/b']) {
    app.register(async (scope) => {
      await scope.register(tokenAuth, { secret: SECRET, realm: prefix })
      scope.get('/me', { preHandler: scope.authenticate }, async () => ({ ok: true }))
    }, { prefix })
  }
  await app.ready()
  const res = await app.inject('/b/me')
  t.equal(res.statusCode, 401)
  t.match(res.headers['www-authenticate'], /realm="\/b"/, 'each scope its own instance')
})
