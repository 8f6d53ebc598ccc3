import { createHash } from 'node:crypto'
import { InvalidOptionError, StoreUnavailableError } from '../errors.js'
import { MAX_FAMILIES_PER_USER, MAX_SOURCES_PER_ACCOUNT, type AuthStore, type RefreshFamily, type RotateResult } from './types.js'

/**
 * The part of an `ioredis` client (or Cluster) the store calls. Written out here rather than
 * imported from ioredis, an optional peer: an app that never uses this store compiles without
 * ioredis installed, even with `skipLibCheck: false`. ioredis's `Redis` and `Cluster` fit it.
 */
export interface RedisClient {
  /** Defines a Lua script as a command (ioredis sends EVALSHA, then EVAL). */
  defineCommand (name: string, definition: { numberOfKeys: number, lua: string }): void
  hmget (key: string, ...fields: string[]): Promise<Array<string | null>>
  get (key: string): Promise<string | null>
  mget (...keys: string[]): Promise<Array<string | null>>
  set (key: string, value: string, mode: 'PX', milliseconds: number): Promise<unknown>
  del (...keys: string[]): Promise<number>
  exists (...keys: string[]): Promise<number>
  /** Read once at registration (`CONFIG GET maxmemory-policy`), where the server allows it. */
  config (subcommand: 'GET', parameter: string): Promise<unknown>
}

/** Options of the Redis store. */
export interface RedisStoreOptions {
  /**
   * An `ioredis` client, or an `ioredis` Cluster. The host owns it: the store never connects,
   * quits or listens to it. Give it `enableOfflineQueue: false` (or a low
   * `maxRetriesPerRequest`) so commands fail at once while Redis is away.
   */
  client: RedisClient
  /** Put before every key; default `fastify-token-auth:`. No `{` or `}`: they would change the Cluster hash slot. */
  prefix?: string
  /** Milliseconds a store call may take before it counts as failed (503); default 1000. */
  commandTimeout?: number
}

/*
 * The Lua scripts. Each runs atomically on one Redis; on a Cluster every key a script touches
 * carries the same hash tag (`{userKey}`), so the script runs in one slot. Scripts that reach
 * keys they build themselves (a user's families) only build keys under that same tag.
 *
 * Times: the caller's `now` (ms) decides what has expired, stored in fields; every key also
 * gets a relative TTL (PEXPIRE), so Redis drops what is dead and never fills up.
 */

// KEYS[1] counter; ARGV limit, windowMs, backoffMaxMs (-1: a fixed window), now.
const RESERVE = `
local limit, window, maxMs, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 'c', 'b', 'e')
local c, b, e = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
if c == nil or e <= now then c, b, e = 0, 0, now + window end
if b > now then return {0, b - now} end
c = c + 1
if maxMs < 0 then
  if c > limit then return {0, e - now} end
else
  b = 0
  if c >= limit then b = now + math.min(1000 * 2 ^ math.min(c - limit, 30), maxMs) end
  e = math.max(now, b) + window
end
redis.call('HSET', KEYS[1], 'c', c, 'b', b, 'e', e)
redis.call('PEXPIRE', KEYS[1], e - now)
return {1, 0}`

// KEYS[1] counter. Back to nothing counted and no wait, the key decides nothing: it goes, as in
// the memory store, and the next attempt starts a window of its own.
const RELEASE = `
local v = redis.call('HMGET', KEYS[1], 'c', 'b')
local c, b = tonumber(v[1]), tonumber(v[2])
if c == nil or c <= 0 then return 0 end
if c == 1 and b == 0 then redis.call('DEL', KEYS[1]) else redis.call('HINCRBY', KEYS[1], 'c', -1) end
return 0`

// KEYS[1] counter; ARGV windowMs, now.
const HIT = `
local window, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'c', 'e')
local c, e = tonumber(v[1]), tonumber(v[2])
if c == nil or e <= now then c, e = 0, now + window end
c = c + 1
redis.call('HSET', KEYS[1], 'c', c, 'b', 0, 'e', e)
redis.call('PEXPIRE', KEYS[1], e - now)
return {c, e - now}`

// KEYS[1] family, KEYS[2] the user's family set, KEYS[3] the user's revocation bound; ARGV
// family id, family key prefix, sub, username, client, scope, createdAt, expiresAt, hash, idleMs,
// now, the epoch the grant began in, the family's token key, the most families a user keeps.
// Nothing is created for a user revoked since that epoch. Past the cap, the families with the
// earliest idle deadline end (AuthStore.createRefreshFamily): the set, so each pass over it,
// stays that small.
const CREATE = `
local bound = tonumber(redis.call('GET', KEYS[3]))
if bound ~= nil and bound > tonumber(ARGV[12]) then return 0 end
local expires, now = tonumber(ARGV[8]), tonumber(ARGV[11])
local idle = math.min(now + tonumber(ARGV[10]), expires)
redis.call('HSET', KEYS[1], 'sub', ARGV[3], 'username', ARGV[4], 'client', ARGV[5], 'scope', ARGV[6],
  'created', ARGV[7], 'expires', ARGV[8], 'hash', ARGV[9], 'idle', idle, 'tkey', ARGV[13])
redis.call('PEXPIRE', KEYS[1], idle - now)
if redis.call('SCARD', KEYS[2]) >= 32 then
  local live, cap = {}, tonumber(ARGV[14])
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    local ends = tonumber(redis.call('HGET', ARGV[2] .. id, 'idle'))
    if ends == nil or ends <= now then
      redis.call('DEL', ARGV[2] .. id)
      redis.call('SREM', KEYS[2], id)
    elseif id ~= ARGV[1] then live[#live + 1] = {ends, id} end
  end
  if #live >= cap then
    table.sort(live, function (a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    for i = 1, #live - cap + 1 do
      redis.call('DEL', ARGV[2] .. live[i][2])
      redis.call('SREM', KEYS[2], live[i][2])
    end
  end
end
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('PTTL', KEYS[2]) < expires - now then redis.call('PEXPIRE', KEYS[2], expires - now) end
return 1`

// KEYS[1] family, KEYS[2] the user's family set, KEYS[3] the family's access-token deny record;
// ARGV hash, next hash, idleMs, now, family id, graceMs, denyMs. The current token rotates; the
// one the last rotation replaced, presented again within graceMs, is a retry (RFC 9700 §4.14.2):
// the successor handed out before is retired, and the grace still counts from that rotation.
// Any other is reuse: the family keeps its record with no current hash until it would have
// ended, so every later presentation of one of its tokens is reported as reuse too, and its
// access tokens are denied for denyMs.
const ROTATE = `
local v = redis.call('HMGET', KEYS[1], 'hash', 'expires', 'idle', 'prev', 'rotated')
if not v[1] then return 'invalid' end
local now, expires = tonumber(ARGV[4]), tonumber(v[2])
if expires <= now or tonumber(v[3]) <= now then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[5])
  return 'invalid'
end
local idle = math.min(now + tonumber(ARGV[3]), expires)
if v[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'hash', ARGV[2], 'prev', ARGV[1], 'rotated', ARGV[4], 'idle', idle)
  redis.call('PEXPIRE', KEYS[1], idle - now)
  return 'rotated'
end
if v[1] ~= '' and v[4] == ARGV[1] and tonumber(ARGV[6]) > 0 and now < tonumber(v[5]) + tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], 'hash', ARGV[2], 'idle', idle)
  redis.call('PEXPIRE', KEYS[1], idle - now)
  return 'retried'
end
redis.call('HSET', KEYS[1], 'hash', '')
local deny = tonumber(ARGV[7])
if deny > 0 then redis.call('SET', KEYS[3], '1', 'PX', deny) end
return 'reused'`

// KEYS[1] family, KEYS[2] the user's family set, KEYS[3] the family's deny key; ARGV family id,
// denyMs. A family that existed has its access tokens denied for denyMs (none when 0).
const REVOKE_FAMILY = `
local existed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
local deny = tonumber(ARGV[2])
if existed == 1 and deny > 0 then redis.call('SET', KEYS[3], '1', 'PX', deny) end
return existed`

// KEYS[1] the revocation epoch; ARGV now, ttlMs. Advances the epoch to now, or one past its
// value when that is not less, so two revocations in one millisecond still differ; returns it.
// The key lives as long as the longest bound that refers to it: once it is gone, no bound is
// left, and the next value (the time then) is above every value handed out before.
const ADVANCE_EPOCH = `
local value = math.max((tonumber(redis.call('GET', KEYS[1])) or 0) + 1, tonumber(ARGV[1]))
local ttl = math.max(redis.call('PTTL', KEYS[1]), tonumber(ARGV[2]))
value = string.format('%.0f', value)
redis.call('SET', KEYS[1], value, 'PX', ttl)
return value`

// KEYS[1] the user's family set, KEYS[2] the user's revocation bound; ARGV family key prefix,
// the new bound (an epoch), ttlMs, family deny key prefix. Each family that existed is denied
// for ttlMs too (never for less than a deny it had): a refresh that ran between ADVANCE_EPOCH and
// this script read the new epoch, so the bound does not reach the access token it issued, but
// that token names its family (sid).
const REVOKE_USER = `
local value, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('DEL', ARGV[1] .. id) == 1 and redis.call('PTTL', ARGV[4] .. id) < ttl then
    redis.call('SET', ARGV[4] .. id, '1', 'PX', ttl)
  end
end
redis.call('DEL', KEYS[1])
local old = tonumber(redis.call('GET', KEYS[2]))
if old ~= nil and old > value then value = old end
local oldTtl = redis.call('PTTL', KEYS[2])
if oldTtl > ttl then ttl = oldTtl end
redis.call('SET', KEYS[2], string.format('%.0f', value), 'PX', ttl)
return 0`

// KEYS[1] the source's key, KEYS[2] the account's index of its sources (member: source, score:
// when it ends); ARGV source, ttlMs, now, most kept, the prefix of the account's source keys.
// Past the most kept, the sources that end soonest (the least recently remembered) go.
const REMEMBER_SOURCE = `
local source, ttl, now, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, source)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local over = redis.call('ZCARD', KEYS[2]) - most
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do redis.call('DEL', ARGV[5] .. old) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(last[2]) - now))
return 0`

const SCRIPTS = {
  RESERVE: [1, RESERVE],
  RELEASE: [1, RELEASE],
  HIT: [1, HIT],
  CREATE: [3, CREATE],
  ROTATE: [3, ROTATE],
  REVOKE_FAMILY: [3, REVOKE_FAMILY],
  ADVANCE_EPOCH: [1, ADVANCE_EPOCH],
  REVOKE_USER: [2, REVOKE_USER],
  REMEMBER_SOURCE: [2, REMEMBER_SOURCE]
} as const
type ScriptName = keyof typeof SCRIPTS
type Scripted = Record<string, (...args: Array<string | number>) => Promise<unknown>>

/**
 * A store in Redis, shared by every instance of an app: login counters, the per-IP limit,
 * refresh-token families and revocations. Every atomic step is one Lua script, every key has a
 * TTL, and every call fails within `commandTimeout` with `FST_TOKEN_AUTH_STORE_UNAVAILABLE`, which
 * the plugin answers as 503, so a Redis outage never hangs or crashes a request.
 *
 * Run it on a Redis with `maxmemory-policy noeviction`: any other policy lets Redis drop live
 * blocks and revocations under memory pressure. The plugin logs a warning at registration
 * when `CONFIG GET` shows another policy (see `checkSetup`).
 */
export function createRedisStore (options: RedisStoreOptions): AuthStore {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('createRedisStore', 'needs an options object { client, prefix?, commandTimeout? }')
  const { client } = options
  if (typeof client?.defineCommand !== 'function' || typeof client.hmget !== 'function') {
    throw new InvalidOptionError('createRedisStore: client', 'must be an ioredis client or Cluster')
  }
  const prefix = options.prefix ?? 'fastify-token-auth:'
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw new InvalidOptionError('createRedisStore: prefix', 'must be a string without "{" or "}" (they choose the Cluster hash slot)')
  }
  const commandTimeout = options.commandTimeout ?? 1000
  if (!Number.isInteger(commandTimeout) || commandTimeout < 1) {
    throw new InvalidOptionError('createRedisStore: commandTimeout', 'must be a whole number of milliseconds, at least 1')
  }

  // One command per script, named after its text, so two versions of the plugin sharing a
  // client cannot run each other's scripts. ioredis sends EVALSHA and falls back to EVAL.
  const names = {} as Record<ScriptName, string>
  for (const [name, [numberOfKeys, lua]] of Object.entries(SCRIPTS)) {
    names[name as ScriptName] = 'fastifyTokenAuth' + createHash('sha1').update(lua).digest('hex').slice(0, 12)
    client.defineCommand(names[name as ScriptName], { numberOfKeys, lua })
  }
  const scripted = client as unknown as Scripted

  /** Runs one store call, failing within `commandTimeout` with a StoreUnavailableError. */
  async function call<T> (operation: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const pending = operation()
    // The race below may settle first; this one must never become an unhandled rejection.
    pending.catch(() => {})
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${commandTimeout} ms`)), commandTimeout)
    })
    return await Promise.race([pending, timeout])
      .catch((cause: unknown) => { throw new StoreUnavailableError({ cause }) })
      .finally(() => clearTimeout(timer))
  }

  function run (name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    return call(() => scripted[names[name]]!(...args))
  }

  const counter = (key: string): string => `${prefix}c:${key}`
  // Everything about one user shares the hash tag {userKey}: one slot, so one script.
  const userTag = (userKey: string): string => `${prefix}{${userKey}}:`
  const familyKey = (userKey: string, id: string): string => `${userTag(userKey)}f:${id}`
  const familiesKey = (userKey: string): string => `${userTag(userKey)}fams`
  const boundKey = (userKey: string): string => `${userTag(userKey)}rb`
  // An account's known sources and their index share the tag {a:account}: one slot, whatever the source.
  const accountTag = (account: string): string => `${prefix}{a:${account}}:`
  const sourcesOf = (account: string): string => `${accountTag(account)}s:`
  const sourceKey = (account: string, source: string): string => `${sourcesOf(account)}${source}`
  const sourceIndexKey = (account: string): string => `${accountTag(account)}sources`
  const familyDenyKey = (userKey: string, id: string): string => `${userTag(userKey)}fd:${id}`
  // One key for the whole store, in a slot of its own: a grant reads it before it knows the user.
  const epochKey = `${prefix}epoch`

  return {
    async reserve (key, rule, now) {
      const [allowed, retryAfterMs] = await run('RESERVE', counter(key), rule.limit, rule.windowMs, rule.backoff?.maxMs ?? -1, now) as [number, number]
      return { allowed: allowed === 1, retryAfterMs }
    },
    async release (key) {
      await run('RELEASE', counter(key))
    },
    async reset (key) {
      await call(() => client.del(counter(key)))
    },
    async hit (key, windowMs, now) {
      const [count, ttlMs] = await run('HIT', counter(key), windowMs, now) as [number, number]
      return { count, ttlMs }
    },

    async rememberSource (account, source, ttlMs, now) {
      await run('REMEMBER_SOURCE', sourceKey(account, source), sourceIndexKey(account), source, Math.max(1, ttlMs), now, MAX_SOURCES_PER_ACCOUNT, sourcesOf(account))
    },
    async isKnownSource (account, source) {
      return await call(() => client.exists(sourceKey(account, source))) === 1
    },

    async createRefreshFamily (family, tokenHash, idleMs, now, epoch) {
      const { userKey, id } = family
      return await run('CREATE', familyKey(userKey, id), familiesKey(userKey), boundKey(userKey), id, `${userTag(userKey)}f:`,
        family.sub, family.username, family.clientId, family.scope.join(' '),
        family.createdAt, family.expiresAt, tokenHash, idleMs, now, epoch, family.tokenKey, MAX_FAMILIES_PER_USER) === 1
    },
    async getRefreshFamily (userKey, familyId, tokenHash, now) {
      const [sub, username, clientId, scope, created, expires, hash, idle, previous, rotated, tokenKey] = await call(() =>
        client.hmget(familyKey(userKey, familyId), 'sub', 'username', 'client', 'scope', 'created', 'expires', 'hash', 'idle', 'prev', 'rotated', 'tkey'))
      if (sub == null || Number(expires) <= now || Number(idle) <= now) return undefined
      const family: RefreshFamily = {
        id: familyId,
        userKey,
        sub,
        username: username as string,
        clientId: clientId as string,
        scope: scope === '' || scope == null ? [] : scope.split(' '),
        createdAt: Number(created),
        expiresAt: Number(expires),
        // A family written by an earlier version has none.
        tokenKey: tokenKey ?? ''
      }
      const found = { family, current: hash === tokenHash }
      return hash !== '' && previous === tokenHash ? { ...found, replacedAt: Number(rotated) } : found
    },
    async rotateRefreshToken (userKey, familyId, tokenHash, nextHash, { idleMs, graceMs, denyMs }, now) {
      return await run('ROTATE', familyKey(userKey, familyId), familiesKey(userKey), familyDenyKey(userKey, familyId),
        tokenHash, nextHash, idleMs, now, familyId, graceMs, denyMs) as RotateResult
    },
    async revokeRefreshFamily (userKey, familyId, denyMs) {
      return await run('REVOKE_FAMILY', familyKey(userKey, familyId), familiesKey(userKey), familyDenyKey(userKey, familyId), familyId, denyMs) === 1
    },
    async revocationEpoch () {
      return Number(await call(() => client.get(epochKey)) ?? 0)
    },
    async revokeUser (userKey, ttlMs, now) {
      const ttl = Math.max(1, ttlMs)
      // Two steps, as the epoch and the user's keys live in different Cluster slots. A grant that
      // read the epoch before the first step and creates a family between the two has it deleted
      // by the second. A refresh that reads the epoch after the first, and rotates before the
      // second, carries the new epoch, which the bound does not reach: the second step denies
      // the families it ends (their access tokens carry `sid`) for as long as the bound lives,
      // so that refresh's access token dies with them, as it does with the one-step stores.
      const epoch = await run('ADVANCE_EPOCH', epochKey, now, ttl) as string
      await run('REVOKE_USER', familiesKey(userKey), boundKey(userKey), `${userTag(userKey)}f:`, epoch, ttl, familyDenyKey(userKey, ''))
    },
    async revokeAccessToken (userKey, jti, ttlMs) {
      await call(() => client.set(`${userTag(userKey)}j:${jti}`, '1', 'PX', Math.max(1, ttlMs)))
    },
    async revocationState (userKey, jti, _now, familyId) {
      // Every key carries the user's tag, so one MGET answers, on a Cluster too.
      const [bound, denied, familyDenied] = await call(() =>
        client.mget(boundKey(userKey), `${userTag(userKey)}j:${jti ?? ''}`, familyDenyKey(userKey, familyId ?? '')))
      return {
        revokedBefore: Number(bound ?? 0),
        jtiDenied: jti !== undefined && denied !== null,
        familyDenied: familyId !== undefined && familyDenied !== null
      }
    },

    async checkSetup () {
      let policy: unknown
      try {
        policy = (await call(() => client.config('GET', 'maxmemory-policy')) as unknown[])[1]
      } catch {
        // Managed services often refuse CONFIG; nothing can be told then.
        return []
      }
      if (policy === undefined || policy === 'noeviction') return []
      return [`Redis maxmemory-policy is "${String(policy)}", not "noeviction": under memory pressure Redis may evict ` +
        'login blocks, revoked tokens and refresh-token families (every key here has a TTL, so volatile-* policies reach ' +
        'them too), lifting those decisions. Set maxmemory-policy to noeviction: a full Redis then refuses writes, which ' +
        'the plugin answers with 503.']
    }
  }
}
