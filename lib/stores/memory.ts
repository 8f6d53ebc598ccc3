import type { AuthStore, ReserveResult, ThrottleRule } from './types.js'

interface Entry {
  count: number
  blockedUntil: number
  expiresAt: number
}

/** Options of the in-memory store. */
export interface MemoryStoreOptions {
  /** Most keys held at once; the oldest is dropped past that. Default 100 000. */
  maxEntries?: number
}

/**
 * The default store: one process, in memory. Expired entries are swept as new ones arrive, and
 * the number of entries is bounded, so a flood of distinct usernames or addresses cannot grow
 * memory without limit. Apps running as many instances pass a shared store instead.
 */
export function createMemoryStore (options: MemoryStoreOptions = {}): AuthStore {
  const maxEntries = options.maxEntries ?? 100_000
  // A Map keeps insertion order, and every write re-inserts, so the first key is the stalest.
  const entries = new Map<string, Entry>()
  let writesSinceSweep = 0

  function sweep (now: number): void {
    for (const [key, entry] of entries) {
      if (entry.expiresAt <= now) entries.delete(key)
    }
  }

  function write (key: string, entry: Entry, now: number): void {
    entries.delete(key)
    entries.set(key, entry)
    if (++writesSinceSweep >= 1000) {
      writesSinceSweep = 0
      sweep(now)
    }
    if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string)
  }

  function reserveNow (key: string, rule: ThrottleRule, now: number): ReserveResult {
    let entry = entries.get(key)
    if (entry === undefined || entry.expiresAt <= now) entry = { count: 0, blockedUntil: 0, expiresAt: now + rule.windowMs }
    if (entry.blockedUntil > now) return { allowed: false, retryAfterMs: entry.blockedUntil - now }
    if (rule.backoff === undefined) {
      if (entry.count >= rule.limit) return { allowed: false, retryAfterMs: entry.expiresAt - now }
      write(key, { ...entry, count: entry.count + 1 }, now)
      return { allowed: true, retryAfterMs: 0 }
    }
    const count = entry.count + 1
    const blockedUntil = count >= rule.limit
      ? now + Math.min(1000 * 2 ** Math.min(count - rule.limit, 30), rule.backoff.maxMs)
      : 0
    write(key, { count, blockedUntil, expiresAt: Math.max(now, blockedUntil) + rule.windowMs }, now)
    return { allowed: true, retryAfterMs: 0 }
  }

  return {
    async reserve (key, rule, now) {
      return reserveNow(key, rule, now)
    },
    async release (key) {
      const entry = entries.get(key)
      if (entry !== undefined && entry.count > 0) entry.count -= 1
    },
    async reset (key) {
      entries.delete(key)
    },
    async close () {
      entries.clear()
    }
  }
}
