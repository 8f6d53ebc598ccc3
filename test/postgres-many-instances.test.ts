import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createPostgresStore, type AuthEvent } from '../lib/index.js'
import { bearer, buildApp, liveTokens, NO_POSTGRES, postgresPool, testSchema, tokenRequest, type BuildOptions } from './helper.js'

/*
 * Two instances of one app behind a load balancer, as two Fastify apps sharing the PostgreSQL
 * at DATABASE_URL (each with a pool of its own, as two processes would have).
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

async function pair (tt: Tap, plugin: BuildOptions['plugin'] = {}) {
  const schema = await testSchema(tt, postgresPool(tt))
  const events: AuthEvent[] = []
  const instance = async () => buildApp(tt, {
    plugin: {
      store: createPostgresStore({ pool: postgresPool(tt), schema }),
      refreshTokens: true,
      revocableAccessTokens: true,
      rateLimit: false,
      onAuthEvent: (e) => events.push(e),
      ...plugin
    }
  })
  return { a: await instance(), b: await instance(), events, schema }
}

async function login (app: FastifyInstance) {
  const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json() as { access_token: string, refresh_token: string }
}

const refreshWith = (app: FastifyInstance, token: string) => tokenRequest(app, { grant_type: 'refresh_token', refresh_token: token })

t.test('many instances sharing one PostgreSQL', { skip: NO_POSTGRES }, async (t) => {
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
    const { a, b, events, schema } = await pair(t)
    const { refresh_token: r1 } = await login(a)
    t.equal((await refreshWith(a, r1)).statusCode, 200, 'a refresh whose answer the client lost')
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => refreshWith(i % 2 === 0 ? a : b, r1)))
    t.same(answers.map((r) => r.statusCode), Array(10).fill(200), 'every retry gets a pair')
    t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 0, 'none is taken for reuse')
    // Presenting a dead token is reuse, which would end the family: the store tells which is live.
    const tokens = answers.map((r) => r.json().refresh_token as string)
    const live = await liveTokens(createPostgresStore({ pool: postgresPool(t), schema }), tokens)
    t.equal(live.length, 1, 'exactly one of the ten works')
    t.equal((await refreshWith(b, live[0]!)).statusCode, 200, 'and it does')
  })

  t.test('a revocation on A is seen on B: one access token, then every token of the user', async (t) => {
    const { a, b } = await pair(t)
    const one = await login(a)
    const two = await login(b)
    t.equal((await b.inject({ url: '/protected', headers: bearer(one.access_token) })).statusCode, 200)
    t.equal((await tokenRequest(a, { token: one.access_token }, {}, '/revoke')).statusCode, 200)
    t.equal((await b.inject({ url: '/protected', headers: bearer(one.access_token) })).statusCode, 401, 'the revoked access token, on B')
    t.equal((await a.inject({ url: '/protected', headers: bearer(two.access_token) })).statusCode, 200, 'the other session is untouched')

    await a.revokeUserTokens('user1')
    t.equal((await b.inject({ url: '/protected', headers: bearer(two.access_token) })).statusCode, 401, 'log out everywhere, seen on B')
    t.equal((await refreshWith(b, two.refresh_token)).json().error, 'invalid_grant', 'B\'s refresh token ended too')
  })

  t.test('failed logins on A and B add up to one limit', async (t) => {
    const { a, b } = await pair(t)
    const wrong = { grant_type: 'password', username: 'user1', password: 'wrong-password' }
    const statuses: number[] = []
    for (let i = 0; i < 12; i++) statuses.push((await tokenRequest(i % 2 === 0 ? a : b, wrong)).statusCode)
    // The default: 5 failures per (username, address), counted together on A and B.
    t.same(statuses, [400, 400, 400, 400, 400, 429, 429, 429, 429, 429, 429, 429])
  })
})
