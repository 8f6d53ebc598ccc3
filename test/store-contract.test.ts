import t from 'tap'
import { createMemoryStore, createRedisStore } from '../lib/index.js'
import { keyTtls, NO_REDIS, redisClient, testPrefix } from './helper.js'
import { storeContract } from './store-contract.js'

/* One contract, every store: the default memory store, and the Redis store on the real server at REDIS_URL. */

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
