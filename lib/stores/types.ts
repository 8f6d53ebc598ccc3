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

/** The answer of `hit`: the count in the current window, and the time until it ends. */
export interface HitResult {
  count: number
  /** Milliseconds until the window ends and the count starts over. */
  ttlMs: number
}

/**
 * A refresh-token family: every refresh token issued from one login, each replacing the last
 * (RFC 9700 §4.14.2). The store keeps the hash of the current token only, never a token.
 */
export interface RefreshFamily {
  /** Random id of the family. */
  id: string
  /** Groups a user's families (a hash of `sub`); the unit of "log out everywhere". */
  userKey: string
  /** The access tokens' `sub`. */
  sub: string
  /** The username, so `findUser` can run again on refresh. */
  username: string
  /** The client the family was issued to (RFC 6749 §10.4). */
  clientId: string
  /** The scopes granted at login; a refresh may narrow them, never widen them (RFC 6749 §6). */
  scope: string[]
  /** When the family began, in milliseconds. */
  createdAt: number
  /** The absolute end of the family, in milliseconds, however often it is used. */
  expiresAt: number
  /**
   * The family's own key (256 random bits, base64url), which its refresh tokens carry a MAC of:
   * it tells a token the family issued and replaced (reuse, which ends the family) from a made-up
   * one (unknown, which ends nothing). A store keeps it as it is given and gives it back with the
   * family. A family without one (`''`: made before the field existed, or by a store that drops
   * it) fails safe: only its current token, and the one its last rotation replaced, are known;
   * any other is unknown, so reuse of an older token goes undetected, but nothing made up ends it.
   */
  tokenKey: string
}

/** What `getRefreshFamily` finds: the family, and whether the presented hash is its current token. */
export interface RefreshLookup {
  family: RefreshFamily
  current: boolean
  /**
   * When the presented hash is the token that the family's last rotation replaced: when that
   * rotation happened (milliseconds). A retry may present it again for a short while.
   */
  replacedAt?: number
}

/**
 * The answer of `rotateRefreshToken`: `rotated` when the presented hash was the current one (it
 * is replaced); `retried` when it was the one the last rotation replaced, within the grace
 * period: the current token is replaced all the same, so the family still has one live token;
 * `reused` for any other: the family is revoked, and keeps no current hash until it would have
 * ended, so each later presentation is `reused` too; `invalid` when there is no such live family.
 */
export type RotateResult = 'rotated' | 'retried' | 'reused' | 'invalid'

/** How `rotateRefreshToken` treats a family; times in milliseconds. */
export interface RotateRules {
  /** The idle lifetime a rotation restarts. */
  idleMs: number
  /**
   * How long after a rotation the token it replaced is taken as a retry rather than reuse
   * (RFC 9700 §4.14.2); 0 never. Counted from the rotation, not from the last retry.
   */
  graceMs: number
  /** On reuse, how long the family's access tokens are denied (`familyDenied`); 0 records nothing. */
  denyMs: number
}

/** What the store knows about a user's access tokens. */
export interface RevocationState {
  /**
   * The user's revocation bound: an access token whose grant began in an earlier revocation
   * epoch (see `revocationEpoch`) is revoked; 0 when there is no bound.
   */
  revokedBefore: number
  /** The asked-for `jti` is on the deny list. */
  jtiDenied: boolean
  /** The asked-for refresh family was revoked for reuse: its access tokens are denied too. */
  familyDenied: boolean
}

/**
 * Most live refresh families (sessions) a store keeps for one user. Creating one more ends the
 * user's family closest to ending on its own (the earliest idle deadline: the least recently
 * used), without denying its access tokens, which live out their short lifetime. Without a cap,
 * one account's credentials and a loop of logins would fill the memory store's table (a 503 for
 * every login, everyone's) and make each login of that user cost Redis a pass over all of them.
 */
export const MAX_FAMILIES_PER_USER = 100

/**
 * Most sources a store keeps known per account: the most recently remembered ones. One account
 * logging in from ever-new addresses (an IPv6 /48 holds 65 536 /64s), or from a browser that
 * drops its device cookie each time, then replaces its own oldest source instead of growing
 * without bound: in the memory store it would fill the table and leave every other user's new
 * sources unknown; in Redis or PostgreSQL it would take space for `knownSourceTtl`.
 */
export const MAX_SOURCES_PER_ACCOUNT = 20

/**
 * Where the state shared by every instance of an app lives. Each method is atomic on its own:
 * two instances calling `reserve` at once on one key both see the other's count, and two
 * instances rotating one refresh token at once rotate it once: the other call is a retry within
 * the grace (retiring the first call's new token) or reuse, never a second live token.
 *
 * Times are milliseconds since the epoch and are passed in (`now`), so every instance uses one
 * clock per call and tests need no fake timers. A store that cannot be reached rejects with an
 * error whose `code` is `FST_TOKEN_AUTH_STORE_UNAVAILABLE`; the plugin answers 503 then. A store
 * with no room left for a new key may forget a count that refuses nothing yet (the memory store
 * forgets the smallest login count below its limit, or the smallest per-IP count); failing that, it rejects with `FST_TOKEN_AUTH_STORE_FULL` rather
 * than forget live state (a block, a count at its limit, a revocation, a session) to make room;
 * the plugin answers 503 too.
 */
export interface AuthStore {
  /** Counts one attempt against `key`, unless the rule refuses it. */
  reserve: (key: string, rule: ThrottleRule, now: number) => Promise<ReserveResult>
  /** Takes back one attempt that `reserve` counted but that never ran. */
  release: (key: string) => Promise<void>
  /** Forgets `key` (a successful login clears its failures). */
  reset: (key: string) => Promise<void>
  /** Counts one request against `key` in a fixed window of `windowMs` (the per-IP limit). */
  hit: (key: string, windowMs: number, now: number) => Promise<HitResult>
  /**
   * Records that `account` logged in from `source` (a client address, an IPv6 /64), for
   * `ttlMs` from `now`; remembering it again restarts that time. The login throttle's
   * per-username backoff neither refuses nor counts a known source. The built-in stores keep an
   * account's 20 most recently remembered sources: one more forgets its oldest.
   */
  rememberSource: (account: string, source: string, ttlMs: number, now: number) => Promise<void>
  /**
   * Whether `account` logged in from `source` within its remembered time. A store that holds
   * the answer in memory may give it at once rather than as a promise.
   */
  isKnownSource: (account: string, source: string, now: number) => boolean | Promise<boolean>
  /**
   * Starts a family whose current token hashes to `tokenHash`; it lives `idleMs` unless used, at
   * most until `expiresAt`. Atomically conditional on `epoch`, the revocation epoch read when the
   * grant began: when the user's bound has passed it (`revokeUser` ran since), nothing is created
   * and it resolves false. A user keeps at most `MAX_FAMILIES_PER_USER` live families: creating
   * one more ends the one with the earliest idle deadline, in the same atomic step (concurrent
   * creations may leave a few more until the next).
   */
  createRefreshFamily: (family: RefreshFamily, tokenHash: string, idleMs: number, now: number, epoch: number) => Promise<boolean>
  /**
   * The live family `familyId` of `userKey`, if any, and whether `tokenHash` is its current
   * token. A family revoked for reuse is still found until it would have ended, with no current token.
   */
  getRefreshFamily: (userKey: string, familyId: string, tokenHash: string, now: number) => Promise<RefreshLookup | undefined>
  /**
   * Atomically replaces the current token by `nextHash` and restarts the idle time, when
   * `tokenHash` is the current token, or the one the last rotation replaced within
   * `rules.graceMs`; any other hash revokes the family (and denies its access tokens for
   * `rules.denyMs`).
   */
  rotateRefreshToken: (userKey: string, familyId: string, tokenHash: string, nextHash: string, rules: RotateRules, now: number) => Promise<RotateResult>
  /**
   * Ends one family; resolves true when it existed. When it existed and `denyMs` > 0, its access
   * tokens are denied (`familyDenied`) for `denyMs` from `now`, in the same atomic step (RFC 7009
   * §2.1: revoking a refresh token should invalidate the access tokens of the same grant).
   */
  revokeRefreshFamily: (userKey: string, familyId: string, denyMs: number, now: number) => Promise<boolean>
  /**
   * The store's revocation epoch, read before a grant checks any credential; 0 before any
   * `revokeUser`. It only grows while a bound that refers to it may live.
   */
  revocationEpoch: () => number | Promise<number>
  /**
   * Ends every family of `userKey`, advances the revocation epoch (to `now`, or one past its
   * value when that is not less) and makes it the user's bound: every grant that read an earlier
   * epoch is revoked. The records live `ttlMs` (an access token's lifetime).
   *
   * A store that cannot do all of it in one atomic step (Redis: the epoch and the user's keys
   * live in different Cluster slots) must still leave nothing that survives it: a refresh that
   * reads the advanced epoch before the families end issues an access token the bound does not
   * reach, so such a store also denies each family it ends (`familyDenied`) for `ttlMs`.
   */
  revokeUser: (userKey: string, ttlMs: number, now: number) => Promise<void>
  /** Denies the access token `jti` of `userKey` for `ttlMs` (until it expires anyway). */
  revokeAccessToken: (userKey: string, jti: string, ttlMs: number, now: number) => Promise<void>
  /**
   * The user's revocation bound, whether `jti` is denied, and whether refresh family `familyId`
   * was revoked for reuse. With revocable access tokens it is asked on every authenticated
   * request, so a store that holds the answer in memory may give it at once rather than as a promise.
   */
  revocationState: (userKey: string, jti: string | undefined, now: number, familyId?: string) => RevocationState | Promise<RevocationState>
  /** Frees what the store holds; the plugin calls it when the app closes, for a store it made itself. */
  close?: () => Promise<void>
  /**
   * Problems with how the store's backend is set up (e.g. a Redis that may evict keys), as
   * messages the plugin logs as warnings when it is registered. Never rejects.
   */
  checkSetup?: () => Promise<string[]>
}
