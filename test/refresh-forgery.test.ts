import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { randomBytes } from 'node:crypto'
import { createMemoryStore, createPostgresStore, createRedisStore, type AuthEvent, type AuthStore } from '../lib/index.js'
import { bearer, buildApp, cheapHash, NO_POSTGRES, NO_REDIS, postgresPool, redisClient, testPrefix, testSchema, tokenRequest, type BuildOptions } from './helper.js'

/*
 * A refresh token made up from the first two parts of a real one (`userKey.locator`, which a log
 * line keeping a token's prefix may show) and a secret nobody issued. RFC 9700 §4.14.2 revokes a
 * family for a token that was issued and replaced, not for one nobody issued: such a token is
 * unknown, and ends nothing, whatever endpoint it is presented to.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const RS = { authorization: 'Basic ' + Buffer.from('rs:rs-secret').toString('base64') }

async function app (tt: Tap, store: AuthStore, plugin: BuildOptions['plugin'] = {}): Promise<{ a: FastifyInstance, events: AuthEvent[] }> {
  const events: AuthEvent[] = []
  const a = await buildApp(tt, {
    plugin: {
      store,
      refreshTokens: { retryGrace: 0 },
      revocableAccessTokens: true,
      rateLimit: false,
      loginThrottle: false,
      // The introspection endpoint answers clients that authenticate; users log in as `public`.
      clients: [{ id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true }],
      publicClient: true,
      onAuthEvent: (e: AuthEvent) => events.push(e),
      ...plugin
    }
  })
  return { a, events }
}

async function login (a: FastifyInstance): Promise<{ access_token: string, refresh_token: string }> {
  const res = await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json()
}

const refresh = (a: FastifyInstance, token: string) => tokenRequest(a, { grant_type: 'refresh_token', refresh_token: token })
const revoke = (a: FastifyInstance, token: string) => tokenRequest(a, { token }, {}, '/revoke')
const introspect = (a: FastifyInstance, token: string) => tokenRequest(a, { token }, RS, '/introspect')
const status = async (a: FastifyInstance, token: string) => (await a.inject({ url: '/protected', headers: bearer(token) })).statusCode

/** The real token's `userKey.locator`, and 43 base64url characters nobody issued. */
function forgedFrom (token: string): string {
  const [userKey, locator] = token.split('.') as [string, string]
  return `${userKey}.${locator}.${randomBytes(32).toString('base64url')}`
}

function assertInvalidGrant (tt: Tap, res: LightMyRequestResponse, message: string): void {
  tt.same([res.statusCode, res.json().error], [400, 'invalid_grant'], message)
}

const stores: Array<[string, (tt: Tap) => Promise<AuthStore>, string | false]> = [
  ['the memory store', async () => createMemoryStore(), false],
  ['the Redis store', async (tt) => {
    const prefix = testPrefix()
    return createRedisStore({ client: await redisClient(tt, prefix), prefix })
  }, NO_REDIS],
  ['the PostgreSQL store', async (tt) => {
    const pool = postgresPool(tt)
    return createPostgresStore({ pool, schema: await testSchema(tt, pool) })
  }, NO_POSTGRES]
]

for (const [name, makeStore, skip] of stores) {
  t.test(`a made-up secret under a real family's name, at /token, with ${name}: unknown, and nothing ends`, { skip }, async (t) => {
    const { a, events } = await app(t, await makeStore(t))
    const session = await login(a)
    const forged = forgedFrom(session.refresh_token)

    assertInvalidGrant(t, await refresh(a, forged), 'refused like any unknown token')
    t.same(events.filter((e) => e.type === 'refresh.reuse'), [], 'no refresh.reuse event')
    t.match(events.at(-1), { type: 'refresh.failure', reason: 'unknown' })
    t.notOk('username' in (events.at(-1) as object), 'and it names no user: the family was not reached')
    t.equal(await status(a, session.access_token), 200, 'the session\'s access token was not denied')
    const next = await refresh(a, session.refresh_token)
    t.equal(next.statusCode, 200, 'the real refresh token still refreshes')
    t.equal(await status(a, next.json().access_token), 200)
    t.equal(await status(a, session.access_token), 200, 'and the older access token still works')
  })

  t.test(`a made-up secret under a real family's name, at /revoke and /introspect, with ${name}: unknown, and nothing ends`, { skip }, async (t) => {
    const { a, events } = await app(t, await makeStore(t))
    const session = await login(a)
    const forged = forgedFrom(session.refresh_token)

    t.same(await introspect(a, forged).then((res) => res.json()), { active: false }, 'inactive on introspection')
    const revoked = await revoke(a, forged)
    t.same([revoked.statusCode, revoked.body], [200, '{}'], 'RFC 7009 §2.2: an unknown token is answered 200 all the same')
    t.same(events.filter((e) => e.type === 'token.revoked'), [], 'nothing was revoked')
    t.equal(await status(a, session.access_token), 200, 'the session\'s access token was not denied')
    t.match((await introspect(a, session.refresh_token)).json(), { active: true, token_type: 'refresh_token' })
    t.equal((await refresh(a, session.refresh_token)).statusCode, 200, 'the real refresh token still refreshes')
  })

  t.test(`a token the family issued and replaced is still reuse, with ${name}`, { skip }, async (t) => {
    const { a, events } = await app(t, await makeStore(t))
    const session = await login(a)
    const rotated = await refresh(a, session.refresh_token)
    t.equal(rotated.statusCode, 200)
    const { refresh_token: current, access_token: fresh } = rotated.json()

    // After the rotation, a made-up secret is still only unknown: the family lives on.
    assertInvalidGrant(t, await refresh(a, forgedFrom(current)), 'a made-up secret')
    t.same(events.filter((e) => e.type === 'refresh.reuse'), [])

    assertInvalidGrant(t, await refresh(a, session.refresh_token), 'the replaced token')
    t.match(events.at(-1), { type: 'refresh.reuse', username: 'user1', reason: 'reuse' })
    assertInvalidGrant(t, await refresh(a, current), 'the family has ended, its newest token with it')
    t.equal(await status(a, fresh), 401, 'and its access tokens are denied')
    t.equal(await status(a, session.access_token), 401)
  })

  t.test(`/revoke with a token the family issued and replaced ends the family, with ${name}`, { skip }, async (t) => {
    const { a } = await app(t, await makeStore(t))
    const session = await login(a)
    const { refresh_token: current, access_token: fresh } = (await refresh(a, session.refresh_token)).json()
    t.same([(await revoke(a, session.refresh_token)).statusCode], [200])
    assertInvalidGrant(t, await refresh(a, current), 'the family has ended')
    t.equal(await status(a, fresh), 401, 'and its access tokens are denied (RFC 7009 §2.1)')
  })
}

t.test('a store that drops the family\'s tokenKey fails safe: a token that is not current is unknown, never reuse', async (t) => {
  const memory = createMemoryStore()
  // A custom store written before the field existed: it keeps every field it knows, and no other.
  const store: AuthStore = {
    ...memory,
    async createRefreshFamily ({ tokenKey: _dropped, ...family }, ...rest) {
      return await memory.createRefreshFamily(family as never, ...rest)
    }
  }
  const { a, events } = await app(t, store)
  const session = await login(a)
  const forged = forgedFrom(session.refresh_token)
  assertInvalidGrant(t, await refresh(a, forged), 'a made-up secret')

  const first = await refresh(a, session.refresh_token)
  t.equal(first.statusCode, 200, 'the current token refreshes')
  const second = await refresh(a, first.json().refresh_token)
  t.equal(second.statusCode, 200, 'and so does the one it was given')
  // The token the last rotation replaced is known by its hash alone: still reuse.
  assertInvalidGrant(t, await refresh(a, first.json().refresh_token), 'the token the last rotation replaced')
  t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 1, 'is reuse, known by its hash')

  // Two rotations back, only a key could tell it was issued: without one it is unknown.
  const other = await login(a)
  const o2 = (await refresh(a, other.refresh_token)).json().refresh_token as string
  const o3 = (await refresh(a, o2)).json().refresh_token as string
  assertInvalidGrant(t, await refresh(a, other.refresh_token), 'two rotations back')
  t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 1, 'is not reuse')
  t.equal((await refresh(a, o3)).statusCode, 200, 'and the family lives on')
})
