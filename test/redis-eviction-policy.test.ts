import t, { type Test } from 'tap'
import Fastify from 'fastify'
import tokenAuth, { createRedisStore, type AuthStore } from '../lib/index.js'
import { captureLogs, NO_REDIS, redisClient, SECRET, testPrefix } from './helper.js'

/*
 * A Redis that may evict keys under memory pressure would drop login blocks and revocations
 * (issue 13): every key here has a TTL, so volatile-* policies reach them all. The Redis store
 * reads the policy where CONFIG is allowed, and the plugin logs a warning at registration.
 */

async function warningsOf (t: Test, store: AuthStore): Promise<string[]> {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(tokenAuth, { secret: SECRET, store })
  await app.ready()
  return logs.entries().map((entry) => String(entry.msg))
}

t.test('against the real Redis: a warning for volatile-lru, none for noeviction', { skip: NO_REDIS }, async (t) => {
  const prefix = testPrefix()
  const client = await redisClient(t, prefix)
  const [, original] = await client.config('GET', 'maxmemory-policy') as [string, string]
  t.teardown(async () => { await client.config('SET', 'maxmemory-policy', original) })

  await client.config('SET', 'maxmemory-policy', 'volatile-lru')
  const warned = await warningsOf(t, createRedisStore({ client, prefix }))
  t.equal(warned.length, 1)
  t.match(warned[0], /maxmemory-policy is "volatile-lru", not "noeviction".*evict login blocks, revoked tokens/)

  await client.config('SET', 'maxmemory-policy', 'noeviction')
  t.same(await warningsOf(t, createRedisStore({ client, prefix })), [], 'noeviction: nothing to say')
})

t.test('a Redis that refuses CONFIG (as managed services do), or knows no such setting: no warning, no failure', async (t) => {
  for (const config of [async () => { throw new Error('ERR unknown command \'CONFIG\'') }, async () => []]) {
    const client = { defineCommand: () => {}, hmget: async () => [], config }
    const store = createRedisStore({ client: client as never })
    t.same(await store.checkSetup?.(), [])
  }
})
