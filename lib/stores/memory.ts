import { InvalidOptionError, storeFull } from '../errors.js'
import { STORE_DEFAULTS } from '../options/defaults.js'
import { MAX_FAMILIES_PER_USER, MAX_SOURCES_PER_ACCOUNT, type AuthStore, type RefreshFamily, type ReserveResult, type RevocationState, type ThrottleRule } from './types.js'

interface Entry {
  count: number
  blockedUntil: number
  expiresAt: number
}

/** A login count: an `Entry` that also holds the limit it was last counted against. */
interface Counter extends Entry {
  limit: number
}

interface FamilyEntry {
  family: RefreshFamily
  hash: string
  /** The hash the last rotation replaced, and when (ms); '' and 0 before any rotation. */
  previous: string
  rotatedAt: number
  expiresAt: number
}

interface UserEntry {
  families: Set<string>
  expiresAt: number
}

interface ValueEntry {
  value: number
  expiresAt: number
}

/** An account's known sources (their keys in the sources table), the least recently remembered first. */
interface AccountSources {
  keys: string[]
  expiresAt: number
}

/** Options of the in-memory store. */
export interface MemoryStoreOptions {
  /**
   * Most keys each table holds at once (per-IP counters, login counters, known sources,
   * refresh families, users, revocation bounds, revoked tokens). Expired entries make room;
   * so does the smallest login count that refuses nothing yet, and the smallest per-IP count.
   * Past this a call that would add a key fails with `FST_TOKEN_AUTH_STORE_FULL` (503), and
   * every existing block and revocation holds. Default 100 000.
   */
  maxEntries?: number
}

interface Table<V extends { expiresAt: number }> {
  /** The live entry under `key`; an expired one is dropped. */
  get: (key: string, now: number) => V | undefined
  /** The entry under `key`, live or not. */
  peek: (key: string) => V | undefined
  /** Stores `value`; throws `StoreFullError` when `key` is new and no room can be made. */
  set: (key: string, value: V, now: number) => void
  /** Throws `StoreFullError` unless `set(key)` would find room: check every table before a write that spans two. */
  ensureRoom: (key: string, now: number) => void
  delete: (key: string) => void
  clear: () => void
}

/** The answer for a user with nothing revoked; frozen, as every such request shares it. */
const NOTHING_REVOKED: RevocationState = Object.freeze({ revokedBefore: 0, jtiDenied: false, familyDenied: false })

/** Entries the sweep looks at on each new key. */
const SWEEP_STEP = 4
/** Entries looked at, at most, for an expired one when a table is full. */
const FULL_SCAN = 64

/**
 * What forgetting a live entry would give back to whoever made it (the lower, the sooner it
 * makes room), or `undefined` for an entry that is never forgotten while it lives.
 */
type ForgetCost<V> = (value: V, now: number) => number | undefined

/**
 * A Map bounded in size. Each kind of state has a table of its own, so a flood of one kind
 * (per-IP counters from many addresses) cannot crowd out another (a revoked token, a blocked
 * login).
 *
 * Expired entries are swept a few at each new key, by a cursor that goes round the map, so no
 * single write pays for a pass over the whole map. When the table is full, up to `FULL_SCAN`
 * more are looked at. Finding none expired, a table with a `forgetCost` drops the cheapest live
 * entry among them that it may forget; any other table refuses the new key: failing closed for
 * one request beats lifting a decision. An entry is never moved on update (V8 makes deleting and
 * re-adding a key in a large Map cost far more than the write itself, and a hot counter is
 * written on every request), so the map stays in first-written order, which for a table of one
 * kind is close to the order of expiry: the cursor finds the dead ones early.
 *
 * What "carries no decision" is depends on the kind, so the store deletes those entries itself
 * (a login count taken back to zero).
 */
function boundedTable<V extends { expiresAt: number }> (name: string, maxEntries: number, forgetCost?: ForgetCost<V>): Table<V> {
  const entries = new Map<string, V>()
  // A Map iterator is live: it sees later insertions and skips deleted entries. It persists from
  // write to write, because a fresh iterator starts at the front of the table, where V8 leaves a
  // hole for every entry deleted since its last rehash.
  let cursor = entries.entries()
  /** The next entry from the cursor, going round; `undefined` when the table is empty. */
  function advance (): [string, V] | undefined {
    let next = cursor.next()
    if (next.done === true) {
      cursor = entries.entries()
      next = cursor.next()
    }
    return next.value
  }
  /** Looks at up to `count` entries from the cursor, dropping expired ones; true when one was dropped. */
  function sweep (count: number, now: number): boolean {
    let dropped = false
    for (let i = 0; i < count; i++) {
      const next = advance()
      if (next === undefined) return dropped
      if (next[1].expiresAt <= now) {
        entries.delete(next[0])
        dropped = true
      }
    }
    return dropped
  }
  /** A full table: drops what `FULL_SCAN` entries hold that has expired, or else the cheapest to forget; true when one was dropped. */
  function makeRoom (now: number): boolean {
    let dropped = false
    let cheapest: string | undefined
    let cheapestCost = Infinity
    let cheapestEnd = Infinity
    for (let i = 0; i < FULL_SCAN; i++) {
      // Never undefined: the entries `sweep` just looked at are live, and stay.
      const [key, value] = advance() as [string, V]
      if (value.expiresAt <= now) {
        entries.delete(key)
        dropped = true
        continue
      }
      const cost = forgetCost?.(value, now)
      // The fewest attempts given back; of those, the entry that would end soonest anyway.
      if (cost !== undefined && (cost < cheapestCost || (cost === cheapestCost && value.expiresAt < cheapestEnd))) {
        [cheapest, cheapestCost, cheapestEnd] = [key, cost, value.expiresAt]
      }
    }
    if (!dropped && cheapest !== undefined) entries.delete(cheapest)
    return dropped || cheapest !== undefined
  }
  function ensureRoom (key: string, now: number): void {
    if (entries.has(key)) return
    sweep(SWEEP_STEP, now)
    if (entries.size >= maxEntries && !makeRoom(now)) throw storeFull(name)
  }
  return {
    get (key, now) {
      const value = entries.get(key)
      if (value === undefined || value.expiresAt > now) return value
      entries.delete(key)
      return undefined
    },
    peek: (key) => entries.get(key),
    set (key, value, now) {
      ensureRoom(key, now)
      entries.set(key, value)
    },
    ensureRoom,
    delete: (key) => { entries.delete(key) },
    clear: () => { entries.clear() }
  }
}

/**
 * The default store: one process, in memory. Each kind of state has its own bounded table;
 * expired entries are swept as new ones arrive, and a table full of live entries refuses new
 * keys (`FST_TOKEN_AUTH_STORE_FULL`, answered 503) rather than forget a block or a revocation;
 * the counts' tables first forget a small count (see `counters` and `rates` below).
 * A flood of distinct usernames or addresses therefore can neither grow memory without limit
 * nor lift a decision. Apps running as many instances pass a shared store instead
 * (`createRedisStore`).
 *
 * Every method runs to completion without awaiting anything, so each is atomic in this process.
 */
export function createMemoryStore (options: MemoryStoreOptions = {}): AuthStore {
  const maxEntries = options.maxEntries ?? STORE_DEFAULTS.maxEntries
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new InvalidOptionError('createMemoryStore: maxEntries', 'must be a whole number, at least 1')
  // A full table of per-address counts forgets the smallest: a flood from ever-new addresses,
  // one request each, then pushes out its own counts, not every new address's first request. An
  // address refused for going past its limit has a larger count than the flood's, and `hit` grows
  // it on every refused request too, so it is forgotten only when every count looked at is at
  // least as large: a flood of addresses each past its limit, which no count can slow anyway.
  const rates = boundedTable<Entry>('per_ip_counters', maxEntries, (entry) => entry.count)
  // A full table of login counts forgets the smallest count that refuses nothing yet (of a
  // single failure, mostly), never a block or a count at its limit. Refusing the new key instead
  // would let about `maxEntries` failed logins for made-up usernames, whose counts live 12 hours,
  // refuse everyone's next login for those 12 hours; forgetting gives back to the attempts'
  // maker (the same flood, mostly) only what they are cheapest to make again.
  const counters = boundedTable<Counter>('login_counters', maxEntries, (entry, now) =>
    entry.blockedUntil > now || entry.count >= entry.limit ? undefined : entry.count)
  const sources = boundedTable<ValueEntry>('known_sources', maxEntries)
  // Lives as long as the last of its sources; refused when full, as `sources` is.
  const accountSources = boundedTable<AccountSources>('known_sources', maxEntries)
  const families = boundedTable<FamilyEntry>('refresh_families', maxEntries)
  const users = boundedTable<UserEntry>('users', maxEntries)
  const bounds = boundedTable<ValueEntry>('revocation_bounds', maxEntries)
  const denied = boundedTable<ValueEntry>('revoked_tokens', maxEntries)
  // Every user with a denied token also has an entry in `bounds` that lives at least as long
  // (its value 0 when the user was never revoked as a whole, which revokes nothing): a user
  // without one has nothing revoked, which `revocationState` tells from that lookup alone.
  function ensureDenyRoom (userKey: string, key: string, now: number): void {
    bounds.ensureRoom(userKey, now)
    denied.ensureRoom(key, now)
  }
  function deny (userKey: string, key: string, expiresAt: number, now: number): void {
    const bound = bounds.get(userKey, now)
    if (bound === undefined || bound.expiresAt < expiresAt) bounds.set(userKey, { value: bound?.value ?? 0, expiresAt }, now)
    denied.set(key, { value: 1, expiresAt }, now)
  }
  // The revocation epoch (see AuthStore.revocationEpoch). One number for the process, never
  // dropped, so it only grows.
  let epoch = 0

  function reserveNow (key: string, rule: ThrottleRule, now: number): ReserveResult {
    const entry = counters.get(key, now) ?? { count: 0, blockedUntil: 0, expiresAt: now + rule.windowMs, limit: rule.limit }
    if (entry.blockedUntil > now) return { allowed: false, retryAfterMs: entry.blockedUntil - now }
    if (rule.backoff === undefined) {
      if (entry.count >= rule.limit) return { allowed: false, retryAfterMs: entry.expiresAt - now }
      counters.set(key, { ...entry, count: entry.count + 1, limit: rule.limit }, now)
      return { allowed: true, retryAfterMs: 0 }
    }
    const count = entry.count + 1
    const blockedUntil = count >= rule.limit
      ? now + Math.min(1000 * 2 ** Math.min(count - rule.limit, 30), rule.backoff.maxMs)
      : 0
    counters.set(key, { count, blockedUntil, expiresAt: Math.max(now, blockedUntil) + rule.windowMs, limit: rule.limit }, now)
    return { allowed: true, retryAfterMs: 0 }
  }

  function removeFamily (userKey: string, familyId: string): boolean {
    const existed = families.peek(`${userKey} ${familyId}`) !== undefined
    families.delete(`${userKey} ${familyId}`)
    users.peek(userKey)?.families.delete(familyId)
    return existed
  }

  return {
    async reserve (key, rule, now) {
      return reserveNow(key, rule, now)
    },
    async release (key) {
      const entry = counters.peek(key)
      if (entry === undefined || entry.count === 0) return
      entry.count -= 1
      // Nothing counted and no wait: the entry decides nothing, and frees its place.
      if (entry.count === 0 && entry.blockedUntil === 0) counters.delete(key)
    },
    async reset (key) {
      counters.delete(key)
    },
    async hit (key, windowMs, now) {
      const entry = rates.get(key, now)
      if (entry === undefined) {
        rates.set(key, { count: 1, blockedUntil: 0, expiresAt: now + windowMs }, now)
        return { count: 1, ttlMs: windowMs }
      }
      entry.count += 1
      return { count: entry.count, ttlMs: entry.expiresAt - now }
    },
    async rememberSource (account, source, ttlMs, now) {
      const key = `${account} ${source}`
      const expiresAt = now + ttlMs
      const index = accountSources.get(account, now)
      // The account's sources still known, this one left out: it goes last, as the newest.
      const kept = index?.keys.filter((other) => other !== key && sources.get(other, now) !== undefined) ?? []
      // At the cap, the account's oldest source makes room for this one, in both tables.
      if (kept.length >= MAX_SOURCES_PER_ACCOUNT) sources.delete(kept.shift() as string)
      // Room in both tables is made first, so a full table refuses before anything is written.
      accountSources.ensureRoom(account, now)
      sources.ensureRoom(key, now)
      sources.set(key, { value: 1, expiresAt }, now)
      kept.push(key)
      accountSources.set(account, { keys: kept, expiresAt: Math.max(index?.expiresAt ?? 0, expiresAt) }, now)
    },
    // Not async: asked on every login, and answered from memory.
    isKnownSource (account, source, now) {
      return sources.get(`${account} ${source}`, now) !== undefined
    },

    async createRefreshFamily (family, tokenHash, idleMs, now, grantEpoch) {
      // The user was logged out everywhere after the grant began: no family outlives that.
      if ((bounds.get(family.userKey, now)?.value ?? 0) > grantEpoch) return false
      // Both tables or neither: a family missing from its user's index would outlive "log out everywhere".
      families.ensureRoom(`${family.userKey} ${family.id}`, now)
      users.ensureRoom(family.userKey, now)
      const expiresAt = Math.min(now + idleMs, family.expiresAt)
      const entry: FamilyEntry = { family: { ...family, scope: [...family.scope] }, hash: tokenHash, previous: '', rotatedAt: 0, expiresAt }
      families.set(`${family.userKey} ${family.id}`, entry, now)
      const user = users.get(family.userKey, now) ?? { families: new Set<string>(), expiresAt: 0 }
      // Families that ended on their own leave their id behind; drop those now and then.
      if (user.families.size >= 32) {
        for (const id of user.families) {
          if (families.get(`${family.userKey} ${id}`, now) === undefined) user.families.delete(id)
        }
      }
      // The cap: the family closest to ending on its own makes room (a pass over at most the cap).
      while (user.families.size >= MAX_FAMILIES_PER_USER && !user.families.has(family.id)) {
        let oldest: string | undefined
        let oldestEnd = Infinity
        // Every id left names a live family: the loop above dropped the others.
        for (const id of user.families) {
          const end = families.peek(`${family.userKey} ${id}`)!.expiresAt
          if (end < oldestEnd) [oldest, oldestEnd] = [id, end]
        }
        removeFamily(family.userKey, oldest!)
      }
      user.families.add(family.id)
      users.set(family.userKey, { families: user.families, expiresAt: Math.max(user.expiresAt, family.expiresAt) }, now)
      return true
    },
    async getRefreshFamily (userKey, familyId, tokenHash, now) {
      const entry = families.get(`${userKey} ${familyId}`, now)
      if (entry === undefined) return undefined
      const found = { family: { ...entry.family, scope: [...entry.family.scope] }, current: entry.hash === tokenHash }
      return entry.hash !== '' && entry.previous === tokenHash ? { ...found, replacedAt: entry.rotatedAt } : found
    },
    async rotateRefreshToken (userKey, familyId, tokenHash, nextHash, { idleMs, graceMs, denyMs }, now) {
      const entry = families.get(`${userKey} ${familyId}`, now)
      if (entry === undefined) return 'invalid'
      const expiresAt = Math.min(now + idleMs, entry.family.expiresAt)
      if (entry.hash === tokenHash) {
        families.set(`${userKey} ${familyId}`, { ...entry, hash: nextHash, previous: tokenHash, rotatedAt: now, expiresAt }, now)
        return 'rotated'
      }
      // A retry of the last rotation (RFC 9700 §4.14.2): the successor handed out before is
      // retired, and the grace still counts from that rotation.
      // A grace of 0 is never a retry, even for a caller whose `now` was read before the rotation's.
      if (entry.hash !== '' && entry.previous === tokenHash && graceMs > 0 && now < entry.rotatedAt + graceMs) {
        families.set(`${userKey} ${familyId}`, { ...entry, hash: nextHash, expiresAt }, now)
        return 'retried'
      }
      // Revoked for reuse, the family keeps its record with no current hash until it would
      // have ended, so every later presentation of one of its tokens is reported as reuse too;
      // and the access tokens issued from it are denied until they expire.
      // Room for the deny entry is made first, so a full table refuses before anything changes.
      if (denyMs > 0) ensureDenyRoom(userKey, `f ${userKey} ${familyId}`, now)
      entry.hash = ''
      if (denyMs > 0) deny(userKey, `f ${userKey} ${familyId}`, now + denyMs, now)
      return 'reused'
    },
    async revokeRefreshFamily (userKey, familyId, denyMs, now) {
      const denial = `f ${userKey} ${familyId}`
      const deniable = denyMs > 0 && families.peek(`${userKey} ${familyId}`) !== undefined
      // Room for the deny entry is made first, so a full table refuses before anything changes.
      if (deniable) ensureDenyRoom(userKey, denial, now)
      const existed = removeFamily(userKey, familyId)
      if (deniable) deny(userKey, denial, now + denyMs, now)
      return existed
    },
    revocationEpoch: () => epoch,
    async revokeUser (userKey, ttlMs, now) {
      // Refused before anything is ended, so a failure leaves nothing half done.
      bounds.ensureRoom(userKey, now)
      const user = users.peek(userKey)
      for (const id of user?.families ?? []) families.delete(`${userKey} ${id}`)
      users.delete(userKey)
      epoch = Math.max(epoch + 1, now)
      const bound = bounds.get(userKey, now)
      bounds.set(userKey, { value: epoch, expiresAt: Math.max(bound?.expiresAt ?? 0, now + ttlMs) }, now)
    },
    async revokeAccessToken (userKey, jti, ttlMs, now) {
      ensureDenyRoom(userKey, `${userKey} ${jti}`, now)
      deny(userKey, `${userKey} ${jti}`, now + ttlMs, now)
    },
    // Not async: asked on every authenticated request, and answered from memory. A user with
    // no bound costs one lookup, under a key string that `userKeyOf` hands out again and again,
    // whose hash V8 keeps: no key is built and no object made.
    revocationState (userKey, jti, now, familyId) {
      const bound = bounds.get(userKey, now)
      if (bound === undefined) return NOTHING_REVOKED
      return {
        revokedBefore: bound.value,
        jtiDenied: jti !== undefined && denied.get(`${userKey} ${jti}`, now) !== undefined,
        familyDenied: familyId !== undefined && denied.get(`f ${userKey} ${familyId}`, now) !== undefined
      }
    },

    async close () {
      for (const table of [rates, counters, sources, accountSources, families, users, bounds, denied]) table.clear()
    }
  }
}
