/**
 * How attempts are counted under one key.
 *
 * - Without `backoff`: a fixed window. At most `limit` attempts in `windowMs`, counted from the first.
 * - With `backoff`: every attempt is counted; from the `limit`-th on, each one also starts a wait
 *   of 2^(count - limit) seconds, capped at `backoff.maxMs`, during which attempts are refused and
 *   not counted. The count is forgotten `windowMs` after the last attempt (and any wait) ends.
 */
export interface ThrottleRule {
  limit: number
  windowMs: number
  backoff?: { maxMs: number }
}

/** The answer of `reserve`: whether the attempt may go ahead, or how long to wait. */
export interface ReserveResult {
  allowed: boolean
  /** Milliseconds until an attempt may be allowed again; 0 when allowed. */
  retryAfterMs: number
}

/**
 * Where the state shared by every instance of an app lives. Each method is atomic on its own:
 * two instances calling `reserve` at once on one key both see the other's count.
 */
export interface AuthStore {
  /** Counts one attempt against `key`, unless the rule refuses it. */
  reserve: (key: string, rule: ThrottleRule, now: number) => Promise<ReserveResult>
  /** Takes back one attempt that `reserve` counted but that never ran. */
  release: (key: string) => Promise<void>
  /** Forgets `key` (a successful login clears its failures). */
  reset: (key: string) => Promise<void>
  /** Frees what the store holds; the plugin calls it when the app closes, for a store it made itself. */
  close?: () => Promise<void>
}
