import t from 'tap'
import type { Redis } from 'ioredis'
import { createRedisStore, type AuthStore, type RedisClient } from '../lib/index.js'
import { bearer, buildApp, NO_REDIS, redisClient, testPrefix, tokenRequest } from './helper.js'

/*
 * What the Redis store does beyond the store contract (test/store-contract.test.ts runs that
 * against it): the two steps of "log out everywhere", and families written by an earlier version.
 */

const T0 = 1_700_000_000_000
const MINUTE = 60_000

/**
 * The client, with `between` run after the first of revokeUser's two scripts and before the
 * second (told apart, when it is defined, as the script that ends every family in a user's set).
 */
function interleaved (client: Redis, between: () => Promise<void>): RedisClient {
  let secondStep: string | undefined
  return new Proxy(client, {
    get (target, property, receiver) {
      if (property === 'defineCommand') {
        return (name: string, definition: { numberOfKeys: number, lua: string }) => {
          if (definition.numberOfKeys === 2 && definition.lua.includes("redis.call('SMEMBERS', KEYS[1])")) secondStep = name
          target.defineCommand(name, definition)
        }
      }
      const value = Reflect.get(target, property, receiver) as unknown
      if (typeof value !== 'function') return value
      if (property !== secondStep) return value.bind(target)
      return async (...args: unknown[]) => {
        await between()
        return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
      }
    }
  }) as unknown as RedisClient
}

t.test('against a real Redis', { skip: NO_REDIS }, async (t) => {
  t.test('log out everywhere is final against a refresh that runs between its two steps', async (t) => {
    const prefix = testPrefix()
    const hook: { between?: () => Promise<void> } = {}
    const client = interleaved(await redisClient(t, prefix), async () => { await hook.between?.() })
    const store: AuthStore = createRedisStore({ client, prefix })
    const a = await buildApp(t, { plugin: { store, refreshTokens: true, revocableAccessTokens: true, rateLimit: false, loginThrottle: false } })
    const status = async (token: string) => (await a.inject({ url: '/protected', headers: bearer(token) })).statusCode
    const session = (await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' })).json()

    // The epoch has advanced, the family is still there: the refresh reads the new epoch,
    // rotates, and is answered, all before the families end.
    let racing: { statusCode: number, json: () => { access_token: string, refresh_token: string } } | undefined
    hook.between = async () => {
      hook.between = undefined
      racing = await tokenRequest(a, { grant_type: 'refresh_token', refresh_token: session.refresh_token })
    }
    await a.revokeUserTokens('user1')
    t.equal(racing?.statusCode, 200, 'the refresh ran between the two steps, and was answered')
    const { access_token: racedAccess, refresh_token: racedRefresh } = racing!.json()
    t.equal(await status(racedAccess), 401, 'its access token does not survive the revocation')
    t.equal((await tokenRequest(a, { grant_type: 'refresh_token', refresh_token: racedRefresh })).json().error, 'invalid_grant', 'nor its refresh token')
    t.equal(await status(session.access_token), 401, 'nor the session\'s older access token')

    const after = (await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' })).json()
    t.equal(await status(after.access_token), 200, 'a login after it works')
  })

  t.test('revokeUser denies the families it ends for ttlMs, never shortening a longer deny, and only those', async (t) => {
    const prefix = testPrefix()
    const client = await redisClient(t, prefix)
    const store = createRedisStore({ client, prefix })
    const user = 'userKeyDenyAAAAAAAAAAA'
    const family = (id: string) => ({ id, userKey: user, sub: 's', username: 'u', clientId: 'c', scope: [], createdAt: T0, expiresAt: T0 + 60 * MINUTE, tokenKey: 'k' })
    await store.createRefreshFamily(family('short'), 'h', 30 * MINUTE, T0, 0)
    await store.createRefreshFamily(family('long'), 'h', 30 * MINUTE, T0, 0)
    await store.createRefreshFamily(family('ended'), 'h', 30 * MINUTE, T0, 0)
    await store.revokeRefreshFamily(user, 'ended', 0, T0)
    // A deny longer than the bound's time, from a reuse on an instance with longer access tokens.
    t.equal(await store.rotateRefreshToken(user, 'long', 'wrong', 'h2', { idleMs: 30 * MINUTE, graceMs: 0, denyMs: 20 * MINUTE }, T0), 'reused')

    await store.revokeUser(user, 5 * MINUTE, T0)
    const ttl = async (id: string) => await client.pttl(`${prefix}{${user}}:fd:${id}`)
    t.ok(await ttl('short') > 4 * MINUTE && await ttl('short') <= 5 * MINUTE, 'a family it ended is denied for ttlMs')
    t.ok(await ttl('long') > 19 * MINUTE, 'a longer deny is kept')
    t.equal(await ttl('ended'), -2, 'a family that had ended already is not denied again')
    t.equal((await store.revocationState(user, undefined, T0, 'short')).familyDenied, true)
  })

  t.test('a family written by an earlier version (no token key) comes back with none', async (t) => {
    const prefix = testPrefix()
    const client = await redisClient(t, prefix)
    const store = createRedisStore({ client, prefix })
    const user = 'userKeyOldAAAAAAAAAAAA'
    await client.hset(`${prefix}{${user}}:f:old`, { sub: 's', username: 'u', client: 'c', scope: '', created: T0, expires: T0 + MINUTE, hash: 'h', idle: T0 + MINUTE })
    await client.pexpire(`${prefix}{${user}}:f:old`, MINUTE)
    t.equal((await store.getRefreshFamily(user, 'old', 'h', T0))?.family.tokenKey, '', 'none: it fails safe')
  })
})
