import type { JsonWebKey } from 'node:crypto'
import type { JSONWebKeySet, JWK } from 'jose'
import { ASYMMETRIC_ALGORITHMS, resolveKey, type KeySource, type ResolvedKey, type SigningAlgorithm } from '../options/keys.js'

/**
 * Verify-only mode: the keys come from the issuer's JWKS, fetched and cached by jose's remote
 * JWKS client (timeouts, a cache with a maximum age, one fetch at a time, and at most one refetch
 * per cooldown for a `kid` it does not know). What this module adds: a cooldown after a failed
 * fetch too, one algorithm per key, and a verifier built once per key.
 */

/** Why no key could be found for a token: the token's fault, or the key source's. */
export class KeyLookupError extends Error {
  override name = 'KeyLookupError'
  /** True when the keys could not be had (fetch failed, timed out, or is backing off). */
  readonly unavailable: boolean
  /** With `unavailable`: seconds until the next fetch may be tried. */
  readonly retryAfter: number
  constructor (unavailable: boolean, retryAfterMs = 0) {
    super(unavailable ? 'The signing keys are unavailable' : 'No key matches the token')
    this.unavailable = unavailable
    this.retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000))
  }
}

export interface RemoteKeySet<V> {
  /** The verifier for the key a token's header names; rejects with `KeyLookupError`. */
  verifierFor: (header: { kid?: unknown, alg?: unknown }) => Promise<V>
}

// Errors that say the token names no usable key; anything else is the key source failing.
const NO_SUCH_KEY = new Set(['ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS', 'ERR_JOSE_NOT_SUPPORTED', 'ERR_JWK_INVALID'])

// The one algorithm a published key without an `alg` member is taken to be for.
function defaultAlgorithm (jwk: JWK): SigningAlgorithm | undefined {
  if (jwk.kty === 'RSA') return 'RS256'
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256'
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  return undefined
}

/**
 * The published key with this `kid` that is for this algorithm, checked like a local key, or
 * `null`. A JWK that states no `alg` is for its key type's usual algorithm only (RFC 8725 §3.1).
 */
function publishedKey (jwks: JSONWebKeySet | undefined, kid: string, alg: SigningAlgorithm): ResolvedKey | null {
  const jwk = jwks?.keys.find((k) => k.kid === kid && (k.alg ?? defaultAlgorithm(k)) === alg)
  if (jwk === undefined) return null
  try {
    return resolveKey(`jwks kid ${kid}`, { kid, alg, key: jwk as JsonWebKey })
  } catch {
    // A key the local rules refuse (an RSA key under 2048 bits, say) verifies nothing.
    return null
  }
}

/**
 * The keys of a JWKS URL, fetched on first use. `makeVerifier` turns each published key that
 * passes the local key rules into a verifier, once per key.
 */
export async function createRemoteKeySet<V> (
  { url, cacheMaxAge, cooldown, timeout }: Extract<KeySource, { kind: 'remote' }>,
  makeVerifier: (key: ResolvedKey) => V
): Promise<RemoteKeySet<V>> {
  // jose is ESM only; loaded when a JWKS is used, so the CommonJS build runs without it otherwise.
  const { createRemoteJWKSet, customFetch } = await import('jose')
  let failedAt = -Infinity

  const remote = createRemoteJWKSet(url, {
    cacheMaxAge,
    cooldownDuration: cooldown,
    timeoutDuration: timeout,
    // jose's cooldown counts from the last successful fetch, so an endpoint that is down would be
    // asked again for every token; after a failure, wait a cooldown before the next attempt.
    [customFetch]: async (input: string, init: RequestInit) => {
      const wait = failedAt + cooldown - Date.now()
      if (wait > 0) throw new KeyLookupError(true, wait)
      return await fetch(input, init)
    }
  })
  // One verifier per key jose hands out; jose hands out the same key object until the set changes.
  const verifiers = new WeakMap<object, V | null>()

  async function verifierFor ({ kid, alg }: { kid?: unknown, alg?: unknown }): Promise<V> {
    // RFC 8725 §3.1, §3.10: a token names its key by `kid` and must use that key's algorithm;
    // never a secret (HS*), which a JWKS does not carry, and no `jku`, `x5u` or `jwk` is looked at.
    if (typeof kid !== 'string' || !ASYMMETRIC_ALGORITHMS.includes(alg as SigningAlgorithm)) throw new KeyLookupError(false)
    let key: object
    try {
      key = await remote({ kid, alg: alg as string })
    } catch (error) {
      if (error instanceof KeyLookupError) throw error
      if (NO_SUCH_KEY.has((error as { code?: string }).code as string)) throw new KeyLookupError(false)
      failedAt = Date.now()
      throw new KeyLookupError(true, cooldown)
    }
    let verifier = verifiers.get(key)
    if (verifier === undefined) {
      const resolved = publishedKey(remote.jwks(), kid, alg as SigningAlgorithm)
      verifier = resolved === null ? null : makeVerifier(resolved)
      verifiers.set(key, verifier)
    }
    if (verifier === null) throw new KeyLookupError(false)
    return verifier
  }

  return { verifierFor }
}
