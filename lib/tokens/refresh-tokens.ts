import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { AuthStore, RefreshFamily, RotateResult, RotateRules } from '../stores/types.js'
import { userKeyOf } from './user-key.js'

// userKey . locator (128 random bits) . secret, all base64url. The client treats it as opaque;
// the first two parts only tell the store where to look, and never suffice: the store compares a
// hash of the whole token.
//
// The secret is 128 random bits and a MAC of everything before it under the family's own key
// (`tokenKey`, 256 random bits kept with the family), cut to 128 bits: 32 bytes, 43 characters.
// The MAC is what tells a token the family issued and replaced (reuse, RFC 9700 §4.14.2, which
// ends the family) from one nobody issued (unknown, which ends nothing). Without it, anyone who
// had seen the first two parts of a token (a log line that keeps a token's prefix) could end its
// user's session, and deny its access tokens, with one request and any 43 characters.
//
// The family's id is a hash of the locator, never the locator itself: access tokens carry the id
// (`sid`) in a payload anyone who sees them can read, and the user's key is a hash of `sub`.
const TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/
const RANDOM_BYTES = 16
// HMAC-SHA256 cut to 128 bits: a forger's chance per attempt is 2^-128 (RFC 2104 §5 allows
// truncation to no less than half the hash's length).
const MAC_BYTES = 16

/**
 * Refresh tokens are high-entropy random values, so one round of SHA-256 is the right hash:
 * nothing can be guessed, and a slow hash would only cost every refresh.
 */
function hashOf (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** The id of the family whose tokens carry `locator`: 132 bits of its SHA-256, which do not give the locator back. */
function familyIdOf (locator: string): string {
  return hashOf(locator).slice(0, 22)
}

/** Whether `token` is shaped like one of our refresh tokens (an access token never is: it has no 22-character first part). */
export function isRefreshToken (token: string): boolean {
  return TOKEN.test(token)
}

/** Whether a family has a key to check its tokens' MAC with (one from an earlier version has none). */
function hasKey (tokenKey: unknown): tokenKey is string {
  return typeof tokenKey === 'string' && tokenKey !== ''
}

/** The secret part of a token of the family keyed by `tokenKey`, from its random part. */
function secretOf (tokenKey: string, userKey: string, locator: string, random: Buffer): string {
  const mac = createHmac('sha256', Buffer.from(tokenKey, 'base64url'))
    .update(`${userKey}.${locator}.${random.toString('base64url')}`).digest().subarray(0, MAC_BYTES)
  return Buffer.concat([random, mac]).toString('base64url')
}

/**
 * A fresh token of the family. A family from before `tokenKey` existed, or kept by a custom store
 * that drops it, gets a secret of 256 random bits: no MAC could be checked for it anyway.
 */
function newToken ({ userKey, tokenKey }: RefreshFamily, locator: string): string {
  const secret = hasKey(tokenKey)
    ? secretOf(tokenKey, userKey, locator, randomBytes(RANDOM_BYTES))
    : randomBytes(RANDOM_BYTES + MAC_BYTES).toString('base64url')
  return `${userKey}.${locator}.${secret}`
}

/**
 * Whether the family issued a token with this `secret`: its MAC checks out under the family's key,
 * compared in constant time. The MAC is computed again over the presented random part and the
 * whole secret compared, so no other spelling of the same bytes passes either. A family without a
 * key issued nothing this can tell: false, so a token that is neither current nor the one the last
 * rotation replaced is unknown, never reuse (failing safe: nothing ends).
 */
function issuedBy ({ userKey, tokenKey }: RefreshFamily, locator: string, secret: string): boolean {
  if (!hasKey(tokenKey)) return false
  const expected = secretOf(tokenKey, userKey, locator, Buffer.from(secret, 'base64url').subarray(0, RANDOM_BYTES))
  return timingSafeEqual(Buffer.from(expected), Buffer.from(secret))
}

/**
 * A presented refresh token that names a live family and that the family issued: its current
 * token, the one its last rotation replaced, or an older one whose MAC checks out.
 */
export interface FoundToken {
  family: RefreshFamily
  /** Whether it is the family's current token. */
  current: boolean
  /**
   * Whether it is the token the last rotation replaced, presented within the retry grace: a
   * client retrying a refresh whose answer it lost. Any other token that is not current was
   * issued and replaced: reuse.
   */
  previous: boolean
  /** The hash the store compares. */
  hash: string
  /** The part of the family's tokens that locates it; its successor carries it too. */
  locator: string
}

/** A family not stored yet: its id, which access tokens name (`sid`), and its tokens' locator. */
export interface NewFamily {
  id: string
  locator: string
}

/** Who and what a new family is for. */
export interface FamilyGrant extends NewFamily {
  sub: string
  username: string
  clientId: string
  scope: readonly string[]
}

/** Refresh-token families in the store: the tokens themselves never are, only their hashes. */
export interface RefreshTokens {
  /** A fresh family's id and locator: the access token names the id before the family is stored. */
  newFamily: () => NewFamily
  /**
   * Starts a family for a fresh login and returns its first refresh token and when the family
   * ends (milliseconds); `undefined`, with nothing stored, when the user was logged out
   * everywhere after the grant read `epoch`.
   */
  start: (grant: FamilyGrant, epoch: number) => Promise<{ token: string, expiresAt: number } | undefined>
  /**
   * The live family a presented token names, when the family issued it; `undefined` when it is
   * malformed, names no live family, or was never issued by it (a made-up secret): such a token
   * is unknown, and must end nothing.
   */
  find: (token: string) => Promise<FoundToken | undefined>
  /**
   * Replaces the family's current token by a new one, atomically in the store: `rotated` for the
   * current token, `retried` for the previous one within the retry grace (when `allowRetry`),
   * `reused` for any other (the store has revoked the family, RFC 9700 §4.14.2). Only a token
   * `find` returned reaches it, so only a token the family issued can be taken for reuse.
   */
  rotate: (found: FoundToken, allowRetry: boolean) => Promise<{ outcome: RotateResult, next: string }>
  /** Ends the family, and denies its access tokens when they are revocable; resolves true when it existed. */
  end: (family: RefreshFamily) => Promise<boolean>
}

/** What refresh-token families are kept with. */
export interface RefreshTokensDeps {
  store: AuthStore
  /** Seconds a family may go unused. */
  idleTtl: number
  /** Seconds a family lives from its login however often it is used. */
  absoluteTtl: number
  /** Seconds after a rotation during which the replaced token may be presented again as a retry; 0 never. */
  retryGrace: number
  /** Milliseconds a reused or ended family's access tokens are denied; 0 when they are not revocable. */
  familyDenyMs: number
}

/**
 * Refresh tokens with rotation (RFC 6749 §6, RFC 9700 §4.14.2): each refresh replaces the
 * token, and presenting a replaced one revokes the whole family, as it means two parties hold
 * it. Families are bound to the user, the client and the scopes granted at login.
 *
 * One exception, which RFC 9700 §4.14.2 allows: a client whose refresh answer was lost to the
 * network retries with the token it still has. Within `retryGrace` seconds of the rotation, the
 * token it replaced gets a fresh pair, and the successor the client never received is retired,
 * so the family keeps exactly one live token.
 */
export function createRefreshTokens ({ store, idleTtl, absoluteTtl, retryGrace, familyDenyMs }: RefreshTokensDeps): RefreshTokens {
  const idleMs = idleTtl * 1000
  const graceMs = retryGrace * 1000
  return {
    newFamily () {
      const locator = randomBytes(16).toString('base64url')
      return { id: familyIdOf(locator), locator }
    },

    async start ({ id, locator, sub, username, clientId, scope }, epoch) {
      const now = Date.now()
      const userKey = userKeyOf(sub)
      const tokenKey = randomBytes(32).toString('base64url')
      const family: RefreshFamily = { id, userKey, sub, username, clientId, scope: [...scope], createdAt: now, expiresAt: now + absoluteTtl * 1000, tokenKey }
      const token = newToken(family, locator)
      return await store.createRefreshFamily(family, hashOf(token), idleMs, now, epoch) ? { token, expiresAt: family.expiresAt } : undefined
    },

    async find (token) {
      const match = TOKEN.exec(token)
      if (match === null) return undefined
      const hash = hashOf(token)
      const now = Date.now()
      const locator = match[2] as string
      const lookup = await store.getRefreshFamily(match[1] as string, familyIdOf(locator), hash, now)
      if (lookup === undefined) return undefined
      const { family, current, replacedAt } = lookup
      // The store matched the hash of the current token, or of the one the last rotation
      // replaced: both were issued. Any other must prove it was, or it is unknown, and the grant
      // never hands it to the store's rotation, which would take it for reuse.
      if (!current && replacedAt === undefined && !issuedBy(family, locator, match[3] as string)) return undefined
      return { family, current, previous: replacedAt !== undefined && now < replacedAt + graceMs, hash, locator }
    },

    async rotate ({ family, hash, locator }, allowRetry) {
      const next = newToken(family, locator)
      const rules: RotateRules = { idleMs, graceMs: allowRetry ? graceMs : 0, denyMs: familyDenyMs }
      const outcome = await store.rotateRefreshToken(family.userKey, family.id, hash, hashOf(next), rules, Date.now())
      return { outcome, next }
    },

    // Its access tokens go with it, when they are revocable (RFC 7009 §2.1).
    end: (family) => store.revokeRefreshFamily(family.userKey, family.id, familyDenyMs, Date.now())
  }
}
