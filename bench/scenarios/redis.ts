/*
 * /token and the refresh grant with the Redis store, when REDIS_URL is set and this build has
 * one: what a login and a token rotation cost when the counters and token families live in Redis.
 * The example server runs under a key prefix of its own (REDIS_PREFIX), whose keys are deleted
 * afterwards: the counters and families of an earlier run, or of an `npm start` on the same
 * Redis, stay out of the figures, and the bench leaves nothing behind.
 */
import type autocannon from 'autocannon'
import { expect, load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { FORM, login, nextAddress, RIGHT } from '../harness/requests.js'
import { withServer } from '../harness/server-process.js'
import { CONNECTIONS, type HashingBounds, type Settings } from '../harness/settings.js'

/** Deletes every key under `prefix` on REDIS_URL, through the build's own peer, ioredis. */
async function deleteKeys (redisUrl: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis')
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await client.connect()
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await client.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

export type RedisFigures =
  | { skipped: string }
  | { token: LoadResult, refresh?: LoadResult, refreshSkipped?: string }
  | { error: string }

/** /token and refresh with the Redis store, when REDIS_URL is set and this build has one. */
export async function runRedis ({ time }: Settings, { maxConcurrent }: HashingBounds): Promise<RedisFigures> {
  const redisUrl = process.env.REDIS_URL
  if (redisUrl === undefined || redisUrl === '') {
    return { skipped: 'REDIS_URL is not set' }
  }
  const exported = Object.keys(await import('fastify-token-auth'))
  if (!exported.some((name) => /redis/i.test(name))) {
    return { skipped: 'this build of fastify-token-auth has no Redis store (no Redis export)' }
  }
  const prefix = `fastify-token-auth-bench-${process.pid}:`
  try {
    return await withServer('redis', { TRUST_PROXY: '1', REDIS_URL: redisUrl, REDIS_PREFIX: prefix }, async (server): Promise<RedisFigures> => {
      const { url } = server
      // A new address per request keeps the per-address limit (30 a minute) out of the way;
      // the login counters and the limiter's counters still live in Redis.
      const fromNewAddress = (body: string): autocannon.Request[] => [{
        method: 'POST',
        setupRequest: (request) => ({ ...request, headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() }, body })
      }]
      log('Redis: POST /token, right credentials')
      const token = await load(server, { url: `${url}/token`, connections: 2 * maxConcurrent, duration: time.run, requests: fromNewAddress(RIGHT) })
      expect('POST /token with Redis', token, '200')

      const first = await login(url, { 'x-forwarded-for': nextAddress() })
      if (typeof first.refresh_token !== 'string') {
        return { token, refreshSkipped: 'the example server issues no refresh tokens' }
      }
      // Each connection follows its own refresh-token family: every answer rotates the token.
      const chains: string[] = [first.refresh_token]
      while (chains.length < CONNECTIONS) chains.push((await login(url, { 'x-forwarded-for': nextAddress() })).refresh_token as string)
      let next = 0
      log('Redis: POST /token, refresh grant')
      const refresh = await load(server, {
        url: `${url}/token`,
        connections: CONNECTIONS,
        duration: time.run,
        setupClient: (client) => {
          let current = chains[next++ % chains.length] as string
          client.setRequests([{
            method: 'POST',
            setupRequest: (request) => ({
              ...request,
              headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() },
              body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(current)}`
            }),
            onResponse: (status, body) => {
              if (status === 200) current = (JSON.parse(body) as { refresh_token: string }).refresh_token
            }
          }])
        }
      })
      expect('the refresh grant with Redis', refresh, '200')
      return { token, refresh }
    })
  } catch (error) {
    return { error: (error as Error).message }
  } finally {
    await deleteKeys(redisUrl, prefix).catch((error: Error) => log(`Redis: could not delete the keys under ${prefix}: ${error.message}`))
  }
}
