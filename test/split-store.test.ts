import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createMemoryStore, createPostgresStore, createSplitStore, type AuthStore } from '../lib/index.js'
import { bearer, buildApp, NO_POSTGRES, postgresPool, testSchema, tokenRequest } from './helper.js'

/*
 * The split store: session state in one store, counters in another. The store contract runs
 * over split stores in test/store-contract.test.ts; this file shows which store gets what.
 */

/** A memory store that writes down the name of every method called on it. */
function recording (): { store: AuthStore, calls: Set<string> } {
  const inner = createMemoryStore()
  const calls = new Set<string>()
  const store = new Proxy(inner, {
    get (target, name, receiver) {
      const value = Reflect.get(target, name, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls.add(String(name))
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    }
  })
  return { store, calls }
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** Everything that touches the store: failed and good logins, a refresh, a protected call, a revocation. */
async function exercise (t: Tap, app: FastifyInstance): Promise<void> {
  t.equal((await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'wrong-password' })).statusCode, 400)
  const login = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(login.statusCode, 200)
  const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: login.json().refresh_token })
  t.equal(refreshed.statusCode, 200)
  t.equal((await app.inject({ url: '/protected', headers: bearer(refreshed.json().access_token) })).statusCode, 200)
  t.equal((await tokenRequest(app, { token: refreshed.json().access_token }, {}, '/revoke')).statusCode, 200)
  t.equal((await app.inject({ url: '/protected', headers: bearer(refreshed.json().access_token) })).statusCode, 401)
}

const PLUGIN = { refreshTokens: true, revocableAccessTokens: true } as const

t.test('counters go to the counters store, session state to the sessions store', async (t) => {
  const sessions = recording()
  const counters = recording()
  const app = await buildApp(t, { plugin: { ...PLUGIN, store: createSplitStore({ sessions: sessions.store, counters: counters.store }) } })
  await exercise(t, app)
  t.same([...counters.calls].sort(), ['hit', 'release', 'reserve', 'reset'], 'the per-IP limit and the login counters')
  t.same([...sessions.calls].sort(), ['createRefreshFamily', 'getRefreshFamily', 'isKnownSource', 'rememberSource', 'revocationEpoch', 'revocationState', 'revokeAccessToken', 'rotateRefreshToken'],
    'refresh families, the revocation epoch and revocations')
})

t.test('sessions in PostgreSQL, counters in memory: no counter row is written to PostgreSQL', { skip: NO_POSTGRES }, async (t) => {
  const pool = postgresPool(t)
  const schema = await testSchema(t, pool)
  const app = await buildApp(t, {
    plugin: {
      ...PLUGIN,
      loginThrottle: { perUsernameAndIp: { max: 3, timeWindow: 60_000 }, perUsername: false },
      store: createSplitStore({ sessions: createPostgresStore({ pool, schema }), counters: createMemoryStore() })
    }
  })
  await exercise(t, app)
  const rows = async (table: string): Promise<number> => Number((await pool.query(`SELECT count(*) AS n FROM "${schema}".fastify_token_auth_${table}`)).rows[0].n)
  t.equal(await rows('families'), 1, 'the family is in PostgreSQL')
  t.equal(await rows('denied_tokens'), 1, 'and the revoked access token')
  t.equal(await rows('counters'), 0, 'no counter is')
  for (let i = 0; i < 3; i++) await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'wrong-password' })
  t.equal((await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'wrong-password' })).statusCode, 429, 'the counters count, in memory')
  t.equal(await rows('counters'), 0)
})

t.test('the two stores are checked when the split store is made', async (t) => {
  const invalid = { code: 'FST_TOKEN_AUTH_INVALID_OPTION' }
  t.throws(() => createSplitStore(null as never), { ...invalid, message: /createSplitStore/ })
  t.throws(() => createSplitStore({ counters: createMemoryStore() } as never), { ...invalid, message: /createSplitStore: sessions/ })
  const { hit, ...noHit } = createMemoryStore()
  t.type(hit, 'function')
  t.throws(() => createSplitStore({ sessions: createMemoryStore(), counters: noHit as AuthStore }), { ...invalid, message: /createSplitStore: counters.*hit/ })
  // A counters store needs no session methods, and a sessions store no counters.
  const { reserve, release, reset, hit: h, ...sessionsOnly } = createMemoryStore()
  t.ok(createSplitStore({ sessions: sessionsOnly as AuthStore, counters: { reserve, release, reset, hit: h } as AuthStore }))
})

t.test('a store that relies on `this` keeps working when split', async (t) => {
  const inner = createMemoryStore()
  const counters = {
    count: 0,
    async reserve () { this.count++; return { allowed: true, retryAfterMs: 0 } },
    release: inner.release,
    reset: inner.reset,
    hit: inner.hit
  }
  const split = createSplitStore({ sessions: inner, counters: counters as unknown as AuthStore })
  await split.reserve('k', { limit: 1, windowMs: 1000 }, 0)
  t.equal(counters.count, 1)
})

t.test('close closes both stores, once each, and reports a failure after trying both', async (t) => {
  const closed: string[] = []
  const closing = (name: string, fail = false): AuthStore => ({
    ...createMemoryStore(),
    close: async () => {
      closed.push(name)
      if (fail) throw new Error(`${name} failed to close`)
    }
  })
  await createSplitStore({ sessions: closing('sessions'), counters: closing('counters') }).close?.()
  t.same(closed.sort(), ['counters', 'sessions'])

  closed.length = 0
  const same = closing('both')
  await createSplitStore({ sessions: same, counters: same }).close?.()
  t.same(closed, ['both'], 'one store given twice is closed once')

  closed.length = 0
  await t.rejects(createSplitStore({ sessions: closing('sessions', true), counters: closing('counters') }).close!(), { message: 'sessions failed to close' })
  t.same(closed.sort(), ['counters', 'sessions'], 'the other was closed all the same')

  const { close, ...noClose } = createMemoryStore()
  t.type(close, 'function')
  await createSplitStore({ sessions: noClose as AuthStore, counters: noClose as AuthStore }).close?.()
  t.pass('stores without close are fine')
})
