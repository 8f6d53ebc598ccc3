import t from 'tap'
import Fastify from 'fastify'
import tokenAuth, { createMemoryStore, createRedisStore, type FastifyTokenAuthOptions } from '../lib/index.js'
import { rateLimitStore } from '../lib/endpoints/rate-limit-store.js'
import { SECRET } from './helper.js'

/* Registration-time checks of the refresh, revocation and store options, and store wiring details. */

async function register (options: Partial<FastifyTokenAuthOptions>): Promise<void> {
  const app = Fastify()
  try {
    await app.register(tokenAuth, { secret: SECRET, findUser: () => null, ...options } as FastifyTokenAuthOptions)
    await app.ready()
  } finally {
    await app.close()
  }
}

const INVALID = { code: 'FST_TOKEN_AUTH_INVALID_OPTION' }

t.test('refreshTokens', async (t) => {
  await t.rejects(register({ refreshTokens: 'yes' as never }), INVALID)
  await t.rejects(register({ refreshTokens: null as never }), INVALID)
  await t.rejects(register({ refreshTokens: { idleTtl: 0 } }), INVALID)
  await t.rejects(register({ refreshTokens: { absoluteTtl: 1.5 } }), INVALID)
  await t.rejects(register({ refreshTokens: { idleTtl: 100, absoluteTtl: 50 } }), { ...INVALID, message: /refreshTokens\.idleTtl/ })
  await t.resolves(register({ refreshTokens: { idleTtl: 50, absoluteTtl: 50 } }))
  await t.resolves(register({ refreshTokens: { absoluteTtl: 3600 } }), 'the idle default shrinks to fit a short absolute lifetime')
  await t.resolves(register({ refreshTokens: false }))
  for (const retryGrace of [-1, 1.5, 301, '10' as never]) {
    await t.rejects(register({ refreshTokens: { retryGrace } }), { ...INVALID, message: /refreshTokens\.retryGrace/ }, `retryGrace ${String(retryGrace)}`)
  }
  await t.resolves(register({ refreshTokens: { retryGrace: 0 } }), '0 turns the grace off')
})

t.test('revocableAccessTokens and revocationPath', async (t) => {
  await t.rejects(register({ revocableAccessTokens: 1 as never }), INVALID)
  await t.rejects(register({ revocableAccessTokens: null as never }), INVALID)
  await t.rejects(register({ revocableAccessTokens: { failOpen: 'no' as never } }), { ...INVALID, message: /failOpen/ })
  await t.resolves(register({ revocableAccessTokens: { failOpen: true } }))
  await t.resolves(register({ revocableAccessTokens: {} }))
  await t.rejects(register({ refreshTokens: true, revocationPath: 'revoke' }), { ...INVALID, message: /revocationPath/ })
  await t.rejects(register({ refreshTokens: true, revocationPath: '/token' }), { ...INVALID, message: /tokenPath/ })
  await t.rejects(register({ refreshTokens: true, tokenPath: '/oauth/token', revocationPath: '/oauth/token' }), INVALID)
})

t.test('a store must implement the whole interface', async (t) => {
  const { hit: _hit, ...withoutHit } = createMemoryStore()
  await t.rejects(register({ store: withoutHit as never }), { ...INVALID, message: /hit/ })
  await t.rejects(register({ store: null as never }), INVALID)
})

t.test('createRedisStore checks its options', async (t) => {
  const client = { defineCommand () {}, hmget () {} } as never
  t.throws(() => createRedisStore(undefined as never), INVALID)
  t.throws(() => createRedisStore({} as never), { ...INVALID, message: /client/ })
  t.throws(() => createRedisStore({ client: {} as never }), { ...INVALID, message: /client/ })
  t.throws(() => createRedisStore({ client, prefix: 'app:{x}:' }), { ...INVALID, message: /prefix/ })
  t.throws(() => createRedisStore({ client, prefix: 3 as never }), { ...INVALID, message: /prefix/ })
  t.throws(() => createRedisStore({ client, commandTimeout: 0 }), { ...INVALID, message: /commandTimeout/ })
  t.throws(() => createRedisStore({ client, commandTimeout: 2.5 }), { ...INVALID, message: /commandTimeout/ })
  t.ok(createRedisStore({ client, prefix: '', commandTimeout: 50 }))
})

t.test('the per-IP limiter store: a route with a limit of its own counts apart', async (t) => {
  const Store = rateLimitStore(createMemoryStore())
  const incr = async (store: InstanceType<typeof Store>, key: string) => await new Promise((resolve, reject) => {
    store.incr(key, (error, result) => error === null ? resolve(result) : reject(error), 60_000, 5)
  })
  const global = new Store({})
  const child = global.child({ routeInfo: { method: 'POST', url: '/token' } } as never)
  t.match(await incr(global, '10.0.0.1'), { current: 1 })
  t.match(await incr(global, '10.0.0.1'), { current: 2 })
  t.match(await incr(child, '10.0.0.1'), { current: 1 }, 'the route\'s own count')
  t.match(await incr(global.child({} as never), '10.0.0.1'), { current: 1 })

  const failing = new (rateLimitStore({ ...createMemoryStore(), hit: async () => { throw new Error('down') } }))({})
  await t.rejects(incr(failing, 'x'), { message: 'down' }, 'a store error reaches @fastify/rate-limit')
})
