import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createRedisStore, type AuthEvent } from '../lib/index.js'
import { bearer, buildApp, liveTokens, NO_REDIS, redisClient, testPrefix, tokenRequest, type BuildOptions } from './helper.js'

/*
 * Two instances of one app behind a load balancer, as two Fastify apps sharing the Redis at
 * REDIS_URL (each with a client of its own, as two processes would have).
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

async function pair (tt: Tap, plugin: BuildOptions['plugin'] = {}) {
  const prefix = testPrefix()
  const events: AuthEvent[] = []
  const instance = async () => buildApp(tt, {
    plugin: {
      store: createRedisStore({ client: await redisClient(tt, prefix), prefix }),
      refreshTokens: true,
      revocableAccessTokens: true,
      rateLimit: false,
      onAuthEvent: (e) => events.push(e),
      ...plugin
    }
  })
  return { a: await instance(), b: await instance(), events, prefix }
}

async function login (app: FastifyInstance) {
  const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json() as { access_token: string, refresh_token: string }
}

const refreshWith = (app: FastifyInstance, token: string) => tokenRequest(app, { grant_type: 'refresh_token', refresh_token: token })
const WRONG = { grant_type: 'password', username: 'user1', password: 'wrong-password' }

t.test('many instances sharing one Redis', { skip: NO_REDIS }, async (t) => {
  // Without the retry grace, every second presentation of a token is reuse.
  const NO_GRACE = { refreshTokens: { retryGrace: 0 } }

  t.test('a refresh token rotated on A is reuse on B, and the family ends on both', async (t) => {
    const { a, b, events } = await pair(t, NO_GRACE)
    const { refresh_token: r1 } = await login(a)
    const rotated = await refreshWith(a, r1)
    t.equal(rotated.statusCode, 200)
    const reuse = await refreshWith(b, r1)
    t.equal(reuse.statusCode, 400)
    t.equal(reuse.json().error, 'invalid_grant')
    t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 1)
    t.equal((await refreshWith(a, rotated.json().refresh_token)).json().error, 'invalid_grant', 'A\'s newest token is dead too')
  })

  t.test('10 refreshes at once with one token, spread over A and B: exactly one succeeds', async (t) => {
    const { a, b, events } = await pair(t, NO_GRACE)
    const { refresh_token: r1 } = await login(a)
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => refreshWith(i % 2 === 0 ? a : b, r1)))
    t.equal(answers.filter((r) => r.statusCode === 200).length, 1)
    t.equal(answers.filter((r) => r.statusCode === 400 && r.json().error === 'invalid_grant').length, 9)
    t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 9, 'the other nine are reuse')
  })

  t.test('with the retry grace, 10 retries at once of a replaced token, spread over A and B, leave one live token', async (t) => {
    const { a, b, events, prefix } = await pair(t)
    const { refresh_token: r1 } = await login(a)
    t.equal((await refreshWith(a, r1)).statusCode, 200, 'a refresh whose answer the client lost')
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => refreshWith(i % 2 === 0 ? a : b, r1)))
    t.same(answers.map((r) => r.statusCode), Array(10).fill(200), 'every retry gets a pair')
    t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 0, 'none is taken for reuse')
    // Presenting a dead token is reuse, which would end the family: the store tells which is live.
    const tokens = answers.map((r) => r.json().refresh_token as string)
    const live = await liveTokens(createRedisStore({ client: await redisClient(t, prefix), prefix }), tokens)
    t.equal(live.length, 1, 'exactly one of the ten works')
    t.equal((await refreshWith(b, live[0]!)).statusCode, 200, 'and it does')
    t.equal((await refreshWith(a, tokens.find((token) => token !== live[0])!)).json().error, 'invalid_grant', 'another one is reuse')
  })

  t.test('failed logins on A and B add up to one limit', async (t) => {
    const { a, b } = await pair(t, { loginThrottle: { perUsernameAndIp: { max: 5, timeWindow: 60_000 }, perUsername: false } })
    for (let i = 0; i < 3; i++) t.equal((await tokenRequest(a, WRONG)).statusCode, 400)
    for (let i = 0; i < 2; i++) t.equal((await tokenRequest(b, WRONG)).statusCode, 400)
    t.equal((await tokenRequest(a, WRONG)).statusCode, 429, 'the 6th, on A')
    t.equal((await tokenRequest(b, WRONG)).statusCode, 429, 'and on B')
  })

  t.test('the per-IP limit of @fastify/rate-limit holds across A and B', async (t) => {
    const { a, b } = await pair(t, { rateLimit: { max: 4, timeWindow: 60_000 }, loginThrottle: false })
    for (const app of [a, b, a, b]) t.equal((await tokenRequest(app, WRONG)).statusCode, 400)
    const refused = await tokenRequest(b, WRONG)
    t.equal(refused.statusCode, 429, 'the 5th request from this address, on B')
    t.match(refused.headers['retry-after'], /^[1-9][0-9]*$/)
    t.equal((await tokenRequest(a, WRONG)).statusCode, 429, 'and on A')
  })

  t.test('a revocation on A is seen on B', async (t) => {
    const { a, b } = await pair(t)
    const one = await login(a)
    const two = await login(b)
    t.equal((await b.inject({ url: '/protected', headers: bearer(one.access_token) })).statusCode, 200)
    t.equal((await tokenRequest(a, { token: one.access_token }, {}, '/revoke')).statusCode, 200)
    t.equal((await b.inject({ url: '/protected', headers: bearer(one.access_token) })).statusCode, 401, 'a revoked access token')
    t.equal((await tokenRequest(a, { token: one.refresh_token }, {}, '/revoke')).statusCode, 200)
    t.equal((await refreshWith(b, one.refresh_token)).json().error, 'invalid_grant', 'a revoked refresh token')

    await a.revokeUserTokens('user1')
    t.equal((await b.inject({ url: '/protected', headers: bearer(two.access_token) })).statusCode, 401, 'log out everywhere')
    t.equal((await refreshWith(b, two.refresh_token)).json().error, 'invalid_grant')
    const again = await login(b)
    t.equal((await a.inject({ url: '/protected', headers: bearer(again.access_token) })).statusCode, 200, 'a new login works everywhere')
  })
})
