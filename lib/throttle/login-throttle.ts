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

/**
 * A browser's device cookie at a login (OWASP "Slow down online guessing attacks with device
 * cookies"): a source of its own, beside the address.
 */
export interface Device {
  /** The account key (`accountKey`) the cookie names. */
  account: string
  /** The device's random id. */
  id: string
  /** The request presented a valid cookie of this account; otherwise the id is new, for the cookie a success sets. */
  presented: boolean
}

/** Reserves a login attempt of `username` from `source` (see `sourceOf`), and from `device` when a browser has one. */
export type LoginThrottle = (username: string, source: string, device?: Device) => Promise<Reservation | Refusal>

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
  /** Failed logins per (username, device cookie) before the cookie stops counting as known; absent without device cookies. */
  deviceLockout?: Required<WindowLimit> | undefined
}

/**
 * Login-failure throttling (RFC 6749 §4.3.2 makes brute-force protection a MUST), built so
 * that it cannot be aimed at the users it protects.
 *
 * - Per (username, source): a fixed window. It is the only limit a user's known source meets,
 *   and only failures from that source fill it; a success clears it (Auth0 blocks the
 *   (user, IP) pair, not the user).
 * - Per username, across sources: a capped backoff (AWS Cognito, Keycloak) against guessing
 *   spread over many addresses. It neither refuses nor counts a known source — one the user
 *   logged in from within `knownSourceTtl` (OWASP "Slow down online guessing attacks with device
 *   cookies", with the address in place of a cookie) — so no amount of failures elsewhere locks
 *   a user out of their usual network, and nothing the user does there starts a wait for their
 *   other devices. A success does not clear it: it would clear the attacker's count too. It ages
 *   out by time alone.
 *
 * - Per (username, device cookie): a browser that presents a valid device cookie of the account
 *   is a known source as an address is, once the user logged in with it within `knownSourceTtl`;
 *   its own failures lock the cookie out (it is then an unknown source) for `deviceLockout`.
 *
 * Each attempt is counted BEFORE its password is verified ("reserve, then settle"): a burst of
 * parallel guesses cannot all pass a check that only counts failures afterwards.
 *
 * Keys name the username whether or not it exists, so a 429 tells nothing about accounts.
 */
export function createLoginThrottle (options: LoginThrottleDeps): LoginThrottle {
  const { store, perUsername, perUsernameAndIp, knownSourceTtl, caseSensitiveUsernames, deviceLockout } = options
  const backoff: ThrottleRule | undefined = perUsername === false
    ? undefined
    : { limit: perUsername.freeAttempts, windowMs: perUsername.timeWindow, backoff: { maxMs: perUsername.maxDelay } }
  const window: ThrottleRule | undefined = perUsernameAndIp === false
    ? undefined
    : { limit: perUsernameAndIp.max, windowMs: perUsernameAndIp.timeWindow }
  const lockout: ThrottleRule | undefined = deviceLockout === undefined ? undefined : { limit: deviceLockout.max, windowMs: deviceLockout.timeWindow }

  return async function reserve (username, source, device) {
    const now = Date.now()
    const account = accountKey(username, caseSensitiveUsernames)
    const userKey = `login:u:${account}`
    const pairKey = `login:us:${account}:${source}`
    // Device cookies stand beside the per-username backoff alone: they are only made while it
    // is on, and always with a `deviceLockout`.
    const deviceSource = device === undefined ? undefined : `device:${device.id}`
    const deviceKey = device?.presented === true ? `login:ud:${account}:${device.id}` : undefined
    let userTaken = false
    // A presented cookie's own attempts first: one it has failed too often is no known source.
    const deviceTaken = deviceKey !== undefined && (await store.reserve(deviceKey, lockout as ThrottleRule, now)).allowed
    const releaseDevice = async (): Promise<void> => { if (deviceTaken) await store.release(deviceKey as string) }
    // The per-username backoff next: spread over many addresses, a brute force on one username
    // is refused by that one hot key, without a key written for every address. It is for
    // unknown sources only: a known source is never refused by it, and its attempts are not
    // counted in it either. Counted, each of them (a success too, until it is settled) could
    // start a wait: after an attack the count stays high for hours, and the user's own login on
    // their laptop would then refuse their phone on a new network for up to `maxDelay`. A known
    // source's failures meet its own (username, source) window, as before.
    if (backoff !== undefined && !await store.isKnownSource(account, source, now) &&
      !(deviceTaken && await store.isKnownSource(account, deviceSource as string, now))) {
      const result = await store.reserve(userKey, backoff, now)
      userTaken = result.allowed
      if (!result.allowed) {
        await releaseDevice()
        return { retryAfterMs: result.retryAfterMs, limit: 'per_username' }
      }
    }
    if (window !== undefined) {
      const result = await store.reserve(pairKey, window, now)
      if (!result.allowed) {
        await Promise.all([userTaken ? store.release(userKey) : undefined, releaseDevice()])
        return { retryAfterMs: result.retryAfterMs, limit: 'per_username_ip' }
      }
    }
    return {
      async succeeded () {
        // A success is no failure: its own per-username count is taken back, and no other.
        await Promise.all([
          window === undefined ? undefined : store.reset(pairKey),
          userTaken ? store.release(userKey) : undefined,
          deviceTaken ? store.reset(deviceKey as string) : undefined
        ])
        if (backoff !== undefined) await store.rememberSource(account, source, knownSourceTtl, Date.now())
        if (deviceSource !== undefined) await store.rememberSource(account, deviceSource, knownSourceTtl, Date.now())
      },
      async cancelled () {
        await Promise.all([
          window === undefined ? undefined : store.release(pairKey),
          userTaken ? store.release(userKey) : undefined,
          releaseDevice()
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
