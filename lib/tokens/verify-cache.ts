import { LruMap } from 'toad-cache'
import type { AccessTokenClaims } from './claims.js'
import type { TokenService } from './token-service.js'
import { isPromise } from '../util/is-promise.js'

/** Most verified tokens remembered at once (fast-jwt's default cache size). */
const DEFAULT_SIZE = 1000

interface Entry {
  token: string
  claims: AccessTokenClaims
  /** Epoch ms from which the token must be verified again: its `exp` plus the clock tolerance. */
  until: number
}

/** Freezes the claims and every object in them: one object is handed to every request with the token. */
function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

/**
 * The last segment of a compact JWS. Looking a token up by it hashes a few dozen characters rather
 * than the whole token; the whole token is compared after.
 */
function signatureOf (token: string): string {
  return token.slice(token.lastIndexOf('.') + 1)
}

/** A token service that remembers what verified; `recall` answers from memory alone. */
export interface CachingTokenService extends TokenService {
  /** The claims of `token` if it verified before and has not expired since; it never verifies. */
  recall: (token: string) => AccessTokenClaims | undefined
}

/**
 * Remembers the tokens that verified, so a client sending the same access token on every call
 * pays for its signature and claim checks once, not on every request.
 *
 * An entry only ever answers for the exact bytes that were verified (found by signature, then
 * compared whole); failures are never remembered, so a forged token is checked in full every
 * time. A remembered token is dropped at its `exp` plus the clock tolerance, which is never later
 * than the verifier itself would accept it: everything else it checks (signature, algorithm,
 * `typ`, issuer, audience, `nbf`, an `iat` not in the future) cannot turn false with time for a
 * token that passed once. Bounded: past `size` entries the least recently used is dropped.
 *
 * The claims are frozen, because the same object is handed to every request with that token.
 */
export function cacheVerifications (tokens: TokenService, clockToleranceSeconds: number, size = DEFAULT_SIZE): CachingTokenService {
  const entries = new LruMap<Entry>(size)

  function recall (token: string): AccessTokenClaims | undefined {
    const signature = signatureOf(token)
    const hit = entries.get(signature)
    if (hit === undefined || hit.token !== token) return undefined
    if (Date.now() < hit.until) return hit.claims
    entries.delete(signature)
    return undefined
  }

  function remember (token: string, claims: AccessTokenClaims): AccessTokenClaims {
    deepFreeze(claims)
    entries.set(signatureOf(token), { token, claims, until: claims.exp * 1000 + clockToleranceSeconds * 1000 })
    return claims
  }

  return {
    sign: tokens.sign,
    publicJwks: tokens.publicJwks,
    recall,
    verify (token) {
      const known = recall(token)
      if (known !== undefined) return known
      const verified = tokens.verify(token)
      return isPromise(verified) ? verified.then((claims) => remember(token, claims)) : remember(token, verified)
    }
  }
}
