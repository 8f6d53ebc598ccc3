import type { AuthStore, ThrottleRule } from '../stores/types.js'
import type { BackoffLimit, WindowLimit } from '../options/types.js'

/** One counted login attempt, to be settled once the password has been checked. */
export interface Reservation {
  /** The login succeeded: the failures counted for this username (and IP) are forgotten. */
  succeeded: () => Promise<void>
  /** The attempt never ran (e.g. the hashing pool was full): take the count back. */
  cancelled: () => Promise<void>
}

/** The answer when a limit refuses the attempt. */
export interface Refusal {
  retryAfterMs: number
  limit: 'per_username_ip' | 'per_username'
}

export type LoginThrottle = (username: string, ip: string) => Promise<Reservation | Refusal>

/**
 * Login-failure throttling (RFC 6749 §4.3.2 makes brute-force protection a MUST).
 *
 * Each attempt is counted BEFORE its password is verified ("reserve, then settle"): a burst of
 * parallel guesses cannot all pass a check that only counts failures afterwards. A successful
 * login settles by clearing the counts; a failed one leaves its count in place.
 *
 * Keys name the username whether or not it exists, so a 429 tells nothing about accounts.
 * Per-username waits are capped (default 15 minutes), so an attacker can slow a user down but
 * never lock them out for good (OWASP Authentication Cheat Sheet).
 */
/** What the login throttle is built from; `false` turns a limit off. */
export interface LoginThrottleDeps {
  store: AuthStore
  perUsernameAndIp: Required<WindowLimit> | false
  perUsername: Required<BackoffLimit> | false
}

export function createLoginThrottle (options: LoginThrottleDeps): LoginThrottle {
  const { store } = options
  const rules: Array<{ limit: Refusal['limit'], rule: ThrottleRule, key: (user: string, ip: string) => string }> = []
  // The per-username backoff first: spread over many addresses, a brute force on one username
  // is refused by that one hot key, without a key written (and taken back) for every address.
  // Either order refuses the same attempts, since a refusal takes back what was reserved before it.
  if (options.perUsername !== false) {
    const { freeAttempts, maxDelay, timeWindow } = options.perUsername
    rules.push({
      limit: 'per_username',
      rule: { limit: freeAttempts, windowMs: timeWindow, backoff: { maxMs: maxDelay } },
      key: (user) => `login:u:${encodeURIComponent(user)}`
    })
  }
  if (options.perUsernameAndIp !== false) {
    const { max, timeWindow } = options.perUsernameAndIp
    rules.push({
      limit: 'per_username_ip',
      rule: { limit: max, windowMs: timeWindow },
      key: (user, ip) => `login:ui:${ip}:${encodeURIComponent(user)}`
    })
  }

  return async function reserve (username, ip) {
    const now = Date.now()
    const taken: string[] = []
    for (const { limit, rule, key } of rules) {
      const name = key(username, ip)
      const result = await store.reserve(name, rule, now)
      if (!result.allowed) {
        // Most refusals come from the first rule (a username under backoff), with nothing to take back.
        if (taken.length > 0) await Promise.all(taken.map((k) => store.release(k)))
        return { retryAfterMs: result.retryAfterMs, limit }
      }
      taken.push(name)
    }
    return {
      succeeded: async () => { await Promise.all(taken.map((k) => store.reset(k))) },
      cancelled: async () => { await Promise.all(taken.map((k) => store.release(k))) }
    }
  }
}
