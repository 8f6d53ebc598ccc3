import { createHash, randomBytes } from 'node:crypto'
import type { AuthStore, RefreshFamily, RotateResult, RotateRules } from '../stores/types.js'
import { userKeyOf } from './user-key.js'

// userKey . locator (128 random bits) . secret (256 random bits), all base64url. The client
// treats it as opaque; the first two parts only tell the store where to look, and never
// suffice: the store compares a hash of the whole token.
//
// The family's id is a hash of the locator, never the locator itself: access tokens carry the id
// (`sid`) in a payload anyone who sees them can read, and the user's key is a hash of `sub`. Were
// the locator the id, a made-up token naming a family would reach it, not match its current hash,
// and be taken for reuse: anyone who had seen an access token could end its user's session, and
// deny its access tokens, with one request (RFC 9700 §4.14.2 revokes a family for a token that was
// issued and replaced, not for one nobody issued).
const TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/

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

function newToken (userKey: string, locator: string): string {
  return `${userKey}.${locator}.${randomBytes(32).toString('base64url')}`
}

/** A presented refresh token that names a live family. */
export interface FoundToken {
  family: RefreshFamily
  /** Whether it is the family's current token. */
  current: boolean
  /**
   * Whether it is the token the last rotation replaced, presented within the retry grace: a
   * client retrying a refresh whose answer it lost. Any other token that is not current is reuse.
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
  /** The live family a presented token names, or `undefined` (malformed, unknown, ended). */
  find: (token: string) => Promise<FoundToken | undefined>
  /**
   * Replaces the family's current token by a new one, atomically in the store: `rotated` for the
   * current token, `retried` for the previous one within the retry grace (when `allowRetry`),
   * `reused` for any other (the store has revoked the family, RFC 9700 §4.14.2).
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
      const token = newToken(userKey, locator)
      const family: RefreshFamily = { id, userKey, sub, username, clientId, scope: [...scope], createdAt: now, expiresAt: now + absoluteTtl * 1000 }
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
      return { family, current, previous: replacedAt !== undefined && now < replacedAt + graceMs, hash, locator }
    },

    async rotate ({ family, hash, locator }, allowRetry) {
      const next = newToken(family.userKey, locator)
      const rules: RotateRules = { idleMs, graceMs: allowRetry ? graceMs : 0, denyMs: familyDenyMs }
      const outcome = await store.rotateRefreshToken(family.userKey, family.id, hash, hashOf(next), rules, Date.now())
      return { outcome, next }
    },

    // Its access tokens go with it, when they are revocable (RFC 7009 §2.1).
    end: (family) => store.revokeRefreshFamily(family.userKey, family.id, familyDenyMs, Date.now())
  }
}
