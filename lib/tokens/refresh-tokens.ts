import { createHash, randomBytes } from 'node:crypto'
import type { AuthStore, RefreshFamily, RotateResult } from '../stores/types.js'
import { userKeyOf } from './user-key.js'

// userKey . familyId (128 random bits) . secret (256 random bits), all base64url. The client
// treats it as opaque; the first two parts only tell the store where to look, and never
// suffice: the store compares a hash of the whole token.
const TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/

/**
 * Refresh tokens are high-entropy random values, so one round of SHA-256 is the right hash:
 * nothing can be guessed, and a slow hash would only cost every refresh.
 */
function hashOf (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** Whether `token` is shaped like one of our refresh tokens (an access token never is: it has no 22-character first part). */
export function isRefreshToken (token: string): boolean {
  return TOKEN.test(token)
}

function newToken (userKey: string, familyId: string): string {
  return `${userKey}.${familyId}.${randomBytes(32).toString('base64url')}`
}

/** A presented refresh token that names a live family. */
export interface FoundToken {
  family: RefreshFamily
  /** Whether it is the family's current token; any other is a replaced one (reuse). */
  current: boolean
  /** The hash the store compares. */
  hash: string
}

/** Who and what a new family is for. */
export interface FamilyGrant {
  sub: string
  username: string
  clientId: string
  scope: readonly string[]
}

/** Refresh-token families in the store: the tokens themselves never are, only their hashes. */
export interface RefreshTokens {
  /** Starts a family for a fresh login and returns its first refresh token. */
  start: (grant: FamilyGrant) => Promise<string>
  /** The live family a presented token names, or `undefined` (malformed, unknown, ended). */
  find: (token: string) => Promise<FoundToken | undefined>
  /**
   * Replaces the found token by a new one, atomically in the store: `reused` when it was not
   * the current token any more (the store has revoked the family, RFC 9700 §4.14.2).
   */
  rotate: (found: FoundToken) => Promise<{ outcome: RotateResult, next: string }>
  /** Ends the family; resolves true when it existed. */
  end: (family: RefreshFamily) => Promise<boolean>
}

/** What refresh-token families are kept with. */
export interface RefreshTokensDeps {
  store: AuthStore
  /** Seconds a family may go unused. */
  idleTtl: number
  /** Seconds a family lives from its login however often it is used. */
  absoluteTtl: number
}

/**
 * Refresh tokens with rotation (RFC 6749 §6, RFC 9700 §4.14.2): each refresh replaces the
 * token, and presenting a replaced one revokes the whole family, as it means two parties hold
 * it. Families are bound to the user, the client and the scopes granted at login.
 */
export function createRefreshTokens ({ store, idleTtl, absoluteTtl }: RefreshTokensDeps): RefreshTokens {
  const idleMs = idleTtl * 1000
  return {
    async start ({ sub, username, clientId, scope }) {
      const now = Date.now()
      const userKey = userKeyOf(sub)
      const id = randomBytes(16).toString('base64url')
      const token = newToken(userKey, id)
      const family: RefreshFamily = { id, userKey, sub, username, clientId, scope: [...scope], createdAt: now, expiresAt: now + absoluteTtl * 1000 }
      await store.createRefreshFamily(family, hashOf(token), idleMs, now)
      return token
    },

    async find (token) {
      const match = TOKEN.exec(token)
      if (match === null) return undefined
      const hash = hashOf(token)
      const lookup = await store.getRefreshFamily(match[1] as string, match[2] as string, hash, Date.now())
      return lookup === undefined ? undefined : { ...lookup, hash }
    },

    async rotate ({ family, hash }) {
      const next = newToken(family.userKey, family.id)
      const outcome = await store.rotateRefreshToken(family.userKey, family.id, hash, hashOf(next), idleMs, Date.now())
      return { outcome, next }
    },

    end: (family) => store.revokeRefreshFamily(family.userKey, family.id)
  }
}
