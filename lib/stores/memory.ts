import type { AuthStore, RefreshFamily, ReserveResult, ThrottleRule } from './types.js'

interface Entry {
  count: number
  blockedUntil: number
  expiresAt: number
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

/** Options of the in-memory store. */
export interface MemoryStoreOptions {
  /**
   * Most keys held at once of each kind (counters, refresh families, users, revocations); the
   * stalest is dropped past that. Default 100 000.
   */
  maxEntries?: number
}

interface BoundedMap<V extends { expiresAt: number }> {
  /** The live entry under `key`; an expired one is dropped. */
  get: (key: string, now: number) => V | undefined
  /** The entry under `key`, live or not. */
  peek: (key: string) => V | undefined
  set: (key: string, value: V, now: number) => void
  delete: (key: string) => void
  clear: () => void
}

/** Entries the sweep looks at on each write. */
const SWEEP_STEP = 4

/**
 * A Map bounded in size, in (nearly) least-recently-written order: the first key is the stalest,
 * and that is the one dropped past `maxEntries`. Expired entries are swept a few at each write, by
 * a cursor that goes round the map, so they do not push live ones out and no single write pays
 * for a pass over the whole map.
 *
 * A key written again moves to the end only when it has drifted into the older half of the map;
 * one in the newer half is updated in place. V8 makes deleting and re-adding a key in a large Map
 * cost far more than the write itself, and a hot counter (one address
 * hammering the token endpoint) is written on every request. A key written within the last
 * `maxEntries / 2` insertions is therefore never the one dropped.
 */
function boundedMap<V extends { expiresAt: number }> (maxEntries: number): BoundedMap<V> {
  const entries = new Map<string, { value: V, inserted: number }>()
  let insertions = 0
  // A Map iterator is live: it sees later insertions and skips deleted entries. These two persist
  // from write to write, because a fresh iterator starts at the front of the table, where V8
  // leaves a hole for every entry deleted since its last rehash: finding the first live key anew
  // on each write cost a scan over up to tens of thousands of holes in a full store.
  let cursor = entries.entries()
  // Everything behind `oldest` was deleted (or moved to the end): its next key is the stalest.
  const oldest = entries.keys()
  function sweep (now: number): void {
    for (let i = 0; i < SWEEP_STEP; i++) {
      const next = cursor.next()
      if (next.done === true) {
        cursor = entries.entries()
        return
      }
      const [key, slot] = next.value
      if (slot.value.expiresAt <= now) entries.delete(key)
    }
  }
  return {
    get (key, now) {
      const value = entries.get(key)?.value
      if (value === undefined || value.expiresAt > now) return value
      entries.delete(key)
      return undefined
    },
    peek: (key) => entries.get(key)?.value,
    set (key, value, now) {
      const slot = entries.get(key)
      if (slot !== undefined && insertions - slot.inserted < maxEntries / 2) {
        slot.value = value
      } else {
        if (slot !== undefined) entries.delete(key)
        entries.set(key, { value, inserted: ++insertions })
      }
      sweep(now)
      // Never done here: with more than maxEntries keys, at least one lies ahead of `oldest`.
      if (entries.size > maxEntries) entries.delete(oldest.next().value as string)
    },
    delete: (key) => { entries.delete(key) },
    clear: () => { entries.clear() }
  }
}

/**
 * The default store: one process, in memory. Expired entries are swept as new ones arrive, and
 * the number of entries is bounded, so a flood of distinct usernames or addresses cannot grow
 * memory without limit. Apps running as many instances pass a shared store instead
 * (`createRedisStore`).
 *
 * Every method runs to completion without awaiting anything, so each is atomic in this process.
 */
export function createMemoryStore (options: MemoryStoreOptions = {}): AuthStore {
  const maxEntries = options.maxEntries ?? 100_000
  const counters = boundedMap<Entry>(maxEntries)
  const families = boundedMap<FamilyEntry>(maxEntries)
  const users = boundedMap<UserEntry>(maxEntries)
  const bounds = boundedMap<ValueEntry>(maxEntries)
  const denied = boundedMap<ValueEntry>(maxEntries)
  // The revocation epoch (see AuthStore.revocationEpoch). One number for the process, never
  // dropped, so it only grows.
  let epoch = 0

  function reserveNow (key: string, rule: ThrottleRule, now: number): ReserveResult {
    const entry = counters.get(key, now) ?? { count: 0, blockedUntil: 0, expiresAt: now + rule.windowMs }
    if (entry.blockedUntil > now) return { allowed: false, retryAfterMs: entry.blockedUntil - now }
    if (rule.backoff === undefined) {
      if (entry.count >= rule.limit) return { allowed: false, retryAfterMs: entry.expiresAt - now }
      counters.set(key, { ...entry, count: entry.count + 1 }, now)
      return { allowed: true, retryAfterMs: 0 }
    }
    const count = entry.count + 1
    const blockedUntil = count >= rule.limit
      ? now + Math.min(1000 * 2 ** Math.min(count - rule.limit, 30), rule.backoff.maxMs)
      : 0
    counters.set(key, { count, blockedUntil, expiresAt: Math.max(now, blockedUntil) + rule.windowMs }, now)
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
      if (entry !== undefined && entry.count > 0) entry.count -= 1
    },
    async reset (key) {
      counters.delete(key)
    },
    async hit (key, windowMs, now) {
      const entry = counters.get(key, now) ?? { count: 0, blockedUntil: 0, expiresAt: now + windowMs }
      counters.set(key, { ...entry, count: entry.count + 1 }, now)
      return { count: entry.count + 1, ttlMs: entry.expiresAt - now }
    },

    async createRefreshFamily (family, tokenHash, idleMs, now, grantEpoch) {
      // The user was logged out everywhere after the grant began: no family outlives that.
      if ((bounds.get(family.userKey, now)?.value ?? 0) > grantEpoch) return false
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
      if (entry.hash !== '' && entry.previous === tokenHash && now < entry.rotatedAt + graceMs) {
        families.set(`${userKey} ${familyId}`, { ...entry, hash: nextHash, expiresAt }, now)
        return 'retried'
      }
      // Revoked for reuse, the family keeps its record with no current hash until it would
      // have ended, so every later presentation of one of its tokens is reported as reuse too;
      // and the access tokens issued from it are denied until they expire.
      entry.hash = ''
      if (denyMs > 0) denied.set(`f ${userKey} ${familyId}`, { value: 1, expiresAt: now + denyMs }, now)
      return 'reused'
    },
    async revokeRefreshFamily (userKey, familyId) {
      return removeFamily(userKey, familyId)
    },
    revocationEpoch: () => epoch,
    async revokeUser (userKey, ttlMs, now) {
      const user = users.peek(userKey)
      for (const id of user?.families ?? []) families.delete(`${userKey} ${id}`)
      users.delete(userKey)
      epoch = Math.max(epoch + 1, now)
      const bound = bounds.get(userKey, now)
      bounds.set(userKey, { value: epoch, expiresAt: Math.max(bound?.expiresAt ?? 0, now + ttlMs) }, now)
    },
    async revokeAccessToken (userKey, jti, ttlMs, now) {
      denied.set(`${userKey} ${jti}`, { value: 1, expiresAt: now + ttlMs }, now)
    },
    // Not async: asked on every authenticated request, and answered from memory.
    revocationState (userKey, jti, now, familyId) {
      return {
        revokedBefore: bounds.get(userKey, now)?.value ?? 0,
        jtiDenied: jti !== undefined && denied.get(`${userKey} ${jti}`, now) !== undefined,
        familyDenied: familyId !== undefined && denied.get(`f ${userKey} ${familyId}`, now) !== undefined
      }
    },

    async close () {
      for (const map of [counters, families, users, bounds, denied]) map.clear()
    }
  }
}
