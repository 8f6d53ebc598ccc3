import { InvalidOptionError } from '../errors.js'
import type { AuthStore } from './types.js'

/** Options of the split store: which store holds what. */
export interface SplitStoreOptions {
  /**
   * Durable session state: refresh-token families and revocations (and any further session
   * state the store contract gains). Lose it, and users are logged out or revoked tokens work
   * again; keep it where it survives a restart, e.g. `createPostgresStore`.
   */
  sessions: AuthStore
  /**
   * Hot counters: the per-IP limit and the login-failure counters, written on every token
   * request. Lose them, and a few failed logins are forgiven; keep them where writes are cheap,
   * e.g. `createRedisStore`, or `createMemoryStore` for a single instance.
   */
  counters: AuthStore
}

// Which store answers which method. A method the contract gains goes to `sessions` unless it
// is a counter: adding it here is the one change this file needs.
const COUNTER_METHODS = ['reserve', 'release', 'reset', 'hit'] as const
const SESSION_METHODS = ['createRefreshFamily', 'getRefreshFamily', 'rotateRefreshToken', 'revokeRefreshFamily', 'revocationEpoch', 'revokeUser',
  'revokeAccessToken', 'revocationState', 'rememberSource', 'isKnownSource'] as const

/**
 * One store made of two: session state in `sessions`, counters in `counters`. Each method goes
 * to exactly one of them, so each stays atomic as its own store makes it. `close` closes both.
 */
export function createSplitStore (options: SplitStoreOptions): AuthStore {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('createSplitStore', 'needs an options object { sessions, counters }')
  for (const part of ['sessions', 'counters'] as const) {
    const store = options[part] as unknown as Record<string, unknown> | null | undefined
    const methods = part === 'sessions' ? SESSION_METHODS : COUNTER_METHODS
    if (!methods.every((m) => typeof store?.[m] === 'function')) {
      throw new InvalidOptionError(`createSplitStore: ${part}`, `must be a store with ${methods.join(', ')}`)
    }
  }
  const { sessions, counters } = options
  const split = {} as Record<string, unknown>
  // Bound, so that a store written as an object with `this`, or a class, keeps working.
  for (const m of COUNTER_METHODS) split[m] = counters[m].bind(counters)
  for (const m of SESSION_METHODS) split[m] = sessions[m].bind(sessions)
  split.close = async () => {
    // Both, even when the first fails; the same store given twice is closed once.
    const stores = sessions === counters ? [sessions] : [sessions, counters]
    const results = await Promise.allSettled(stores.map(async (store) => { await store.close?.() }))
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
  }
  return split as unknown as AuthStore
}
