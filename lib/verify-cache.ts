import type { AccessTokenClaims, TokenService } from './tokens.js'

/** Most verified tokens remembered at once (fast-jwt's default cache size). */
const DEFAULT_SIZE = 1000

interface Entry {
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
 * Remembers the tokens that verified, so a client sending the same access token on every call
 * pays for its signature and claim checks once, not on every request.
 *
 * Keyed by the whole token, signature included, so an entry only ever answers for the exact bytes
 * that were verified; failures are never remembered, so a forged token is checked in full every
 * time. A remembered token is dropped at its `exp` plus the clock tolerance, which is never later
 * than the verifier itself would accept it: everything else it checks (signature, algorithm,
 * `typ`, issuer, audience, `nbf`, an `iat` not in the future) cannot turn false with time for a
 * token that passed once. Bounded: past `size` entries the oldest is dropped.
 *
 * The claims are frozen, because the same object is handed to every request with that token.
 */
export function cacheVerifications (tokens: TokenService, clockToleranceSeconds: number, size = DEFAULT_SIZE): TokenService {
  const entries = new Map<string, Entry>()
  return {
    sign: tokens.sign,
    publicJwks: tokens.publicJwks,
    async verify (token) {
      const now = Date.now()
      const hit = entries.get(token)
      if (hit !== undefined) {
        if (now < hit.until) return hit.claims
        entries.delete(token)
      }
      const claims = deepFreeze(await tokens.verify(token))
      entries.set(token, { claims, until: claims.exp * 1000 + clockToleranceSeconds * 1000 })
      if (entries.size > size) entries.delete(entries.keys().next().value as string)
      return claims
    }
  }
}
