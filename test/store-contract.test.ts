import t from 'tap'
import { createMemoryStore, createPostgresStore, createRedisStore, createSplitStore } from '../lib/index.js'
import { keyTtls, NO_POSTGRES, NO_REDIS, postgresPool, redisClient, testPrefix, testSchema } from './helper.js'
import { storeContract } from './store-contract.js'

/*
 * One contract, every store: the default memory store, the Redis store on the real server at
 * REDIS_URL, the PostgreSQL store on the real server at DATABASE_URL, and split stores.
 */

t.test('the memory store', async (t) => {
  storeContract(t, { makeStore: async () => createMemoryStore() })
})

t.test('the Redis store', { skip: NO_REDIS }, async (t) => {
  const prefixes = new WeakMap<object, { prefix: string, client: Awaited<ReturnType<typeof redisClient>> }>()
  storeContract(t, {
    makeStore: async (t) => {
      const prefix = testPrefix()
      const client = await redisClient(t, prefix)
      const store = createRedisStore({ client, prefix })
      prefixes.set(store, { prefix, client })
      return store
    },
    keyTtls: async (store) => {
      const { client, prefix } = prefixes.get(store)!
      return keyTtls(client, prefix)
    }
  })
})

t.test('the PostgreSQL store', { skip: NO_POSTGRES }, async (t) => {
  const pool = postgresPool(t)
  storeContract(t, {
    makeStore: async (t) => createPostgresStore({ pool, schema: await testSchema(t, pool) })
  })
})

t.test('a split store of two memory stores', async (t) => {
  storeContract(t, { makeStore: async () => createSplitStore({ sessions: createMemoryStore(), counters: createMemoryStore() }) })
})

t.test('a split store: sessions in PostgreSQL, counters in memory', { skip: NO_POSTGRES }, async (t) => {
  const pool = postgresPool(t)
  storeContract(t, {
    makeStore: async (t) => createSplitStore({ sessions: createPostgresStore({ pool, schema: await testSchema(t, pool) }), counters: createMemoryStore() })
  })
})
