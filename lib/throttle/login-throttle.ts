import type { AuthStore, ThrottleRule } from '../stores/types.js'
import type { BackoffLimit, WindowLimit } from '../options/types.js'
import { accountKey, clientKey } from './keys.js'

/** One counted attempt, to be settled once the password (or client secret) has been checked. */
export interface Reservation {
  /**
   * It succeeded: the failures counted for this (username, source) are forgotten, and the
   * source becomes known. Rejects with `StoreFullError` when the source cannot be remembered;
   * the counts are settled by then.
   */
  succeeded: () => Promise<void>
  /** The attempt never ran (e.g. the hashing pool was full): take the count back. */
  cancelled: () => Promise<void>
}

/** The answer when a limit refuses the attempt. */
export interface Refusal {
  retryAfterMs: number
  limit: 'per_username_ip' | 'per_username' | 'per_client_ip'
}

/** Reserves a login attempt of `username` from `source` (see `sourceOf`). */
export type LoginThrottle = (username: string, source: string) => Promise<Reservation | Refusal>

/** Reserves a client authentication of `clientId` from `source`. */
export type ClientThrottle = (clientId: string, source: string) => Promise<Reservation | Refusal>

/** What the login throttle is built from; `false` turns a limit off. */
export interface LoginThrottleDeps {
  store: AuthStore
  perUsernameAndIp: Required<WindowLimit> | false
  perUsername: Required<BackoffLimit> | false
  /** Milliseconds a source stays known after a successful login. */
  knownSourceTtl: number
  caseSensitiveUsernames: boolean
}

/**
 * Login-failure throttling (RFC 6749 §4.3.2 makes brute-force protection a MUST), built so
 * that it cannot be aimed at the users it protects.
 *
 * - Per (username, source): a fixed window. It is the only limit a user's known source meets,
 *   and only failures from that source fill it; a success clears it (Auth0 blocks the
 *   (user, IP) pair, not the user).
 * - Per username, across sources: a capped backoff (AWS Cognito, Keycloak) against guessing
 *   spread over many addresses. It never refuses a known source — one the user logged in from
 *   within `knownSourceTtl` (OWASP "Slow down online guessing attacks with device cookies",
 *   with the address in place of a cookie) — so no amount of failures elsewhere locks a user
 *   out of their usual network. A success does not clear it: it would clear the attacker's
 *   count too. It ages out by time alone.
 *
 * Each attempt is counted BEFORE its password is verified ("reserve, then settle"): a burst of
 * parallel guesses cannot all pass a check that only counts failures afterwards.
 *
 * Keys name the username whether or not it exists, so a 429 tells nothing about accounts.
 */
export function createLoginThrottle (options: LoginThrottleDeps): LoginThrottle {
  const { store, perUsername, perUsernameAndIp, knownSourceTtl, caseSensitiveUsernames } = options
  const backoff: ThrottleRule | undefined = perUsername === false
    ? undefined
    : { limit: perUsername.freeAttempts, windowMs: perUsername.timeWindow, backoff: { maxMs: perUsername.maxDelay } }
  const window: ThrottleRule | undefined = perUsernameAndIp === false
    ? undefined
    : { limit: perUsernameAndIp.max, windowMs: perUsernameAndIp.timeWindow }

  return async function reserve (username, source) {
    const now = Date.now()
    const account = accountKey(username, caseSensitiveUsernames)
    const userKey = `login:u:${account}`
    const pairKey = `login:us:${account}:${source}`
    let userTaken = false
    // The per-username backoff first: spread over many addresses, a brute force on one username
    // is refused by that one hot key (and one look-up of the source), without a key written for
    // every address. A known source's attempts count here too, but are never refused here.
    if (backoff !== undefined) {
      const result = await store.reserve(userKey, backoff, now)
      userTaken = result.allowed
      if (!result.allowed && !await store.isKnownSource(account, source, now)) {
        return { retryAfterMs: result.retryAfterMs, limit: 'per_username' }
      }
    }
    if (window !== undefined) {
      const result = await store.reserve(pairKey, window, now)
      if (!result.allowed) {
        if (userTaken) await store.release(userKey)
        return { retryAfterMs: result.retryAfterMs, limit: 'per_username_ip' }
      }
    }
    return {
      async succeeded () {
        // A success is no failure: its own per-username count is taken back, and no other.
        await Promise.all([
          window === undefined ? undefined : store.reset(pairKey),
          userTaken ? store.release(userKey) : undefined
        ])
        if (backoff !== undefined) await store.rememberSource(account, source, knownSourceTtl, Date.now())
      },
      async cancelled () {
        await Promise.all([
          window === undefined ? undefined : store.release(pairKey),
          userTaken ? store.release(userKey) : undefined
        ])
      }
    }
  }
}

/** What the client-authentication throttle is built from; `false` turns it off. */
export interface ClientThrottleDeps {
  store: AuthStore
  /** The limit per (client_id, source): the same as per (username, source). */
  perUsernameAndIp: Required<WindowLimit> | false
}

/**
 * Failed client authentications per (client_id, source), reserved before the secret is
 * checked, as passwords are (ASVS 6.3.1: anti-automation on every authentication path). No
 * per-client_id limit across sources: it would let anyone lock a confidential client out, and
 * a client secret is a random value, out of reach of guessing at this rate.
 */
export function createClientThrottle ({ store, perUsernameAndIp }: ClientThrottleDeps): ClientThrottle | undefined {
  if (perUsernameAndIp === false) return undefined
  const rule: ThrottleRule = { limit: perUsernameAndIp.max, windowMs: perUsernameAndIp.timeWindow }
  return async function reserve (clientId, source) {
    const key = `client:${clientKey(clientId)}:${source}`
    const result = await store.reserve(key, rule, Date.now())
    if (!result.allowed) return { retryAfterMs: result.retryAfterMs, limit: 'per_client_ip' }
    return {
      succeeded: () => store.reset(key),
      cancelled: () => store.release(key)
    }
  }
}
