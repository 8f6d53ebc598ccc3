import type { JsonWebKey } from 'node:crypto'
import type { JSONWebKeySet, JWK } from 'jose'
import { ASYMMETRIC_ALGORITHMS, resolveKey, type KeySource, type ResolvedKey, type SigningAlgorithm } from '../options/keys.js'

/**
 * Verify-only mode: the keys come from the issuer's JWKS, fetched and cached by jose's remote
 * JWKS client (timeouts, a cache with a maximum age, one fetch at a time, and at most one refetch
 * per cooldown for a `kid` it does not know). What this module adds: a cooldown after a failed
 * fetch too, a bound on the size of the set, one algorithm per key, and a verifier built once per
 * key.
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

// Far more than any issuer publishes (a few keys of a few KB each, certificate chains included).
// A longer body is no JWK Set, and reading on until the timeout could take hundreds of megabytes.
const MAX_JWKS_BYTES = 1024 * 1024

/** The body of a JWKS response, refused past `MAX_JWKS_BYTES` (declared or sent) without reading on. */
async function boundedText (response: Response): Promise<string> {
  // A 200 answer to a GET always has a body stream; only 204, 304 and HEAD have none.
  const body = response.body as ReadableStream<Uint8Array>
  if (Number(response.headers.get('content-length')) > MAX_JWKS_BYTES) {
    await body.cancel()
    throw new Error('JWKS response too large')
  }
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.byteLength
    // Leaving the loop cancels the stream, which closes the connection.
    if (size > MAX_JWKS_BYTES) throw new Error('JWKS response too large')
    chunks.push(chunk)
  }
  // As `response.json()` reads it: UTF-8, a byte order mark dropped.
  return new TextDecoder().decode(Buffer.concat(chunks))
}

// The one algorithm a published key without an `alg` member is taken to be for.
function defaultAlgorithm (jwk: JWK): SigningAlgorithm | undefined {
  if (jwk.kty === 'RSA') return 'RS256'
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256'
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  return undefined
}

/**
 * The published key with this `kid` that is for this algorithm and for signatures, checked like a
 * local key, or `null`. A JWK that states no `alg` is for its key type's usual algorithm only (RFC
 * 8725 §3.1); one whose `use` or `key_ops` is for something else never verifies (RFC 7517 §4.2,
 * §4.3). Keys may share a `kid` (§4.5): every rule here is one jose's selection also applies or
 * stricter, so the key found is the one jose picked, wherever it stands in the set.
 */
function publishedKey (jwks: JSONWebKeySet, kid: string, alg: SigningAlgorithm): ResolvedKey | null {
  for (const jwk of jwks.keys) {
    if (jwk.kid !== kid || (jwk.alg ?? defaultAlgorithm(jwk)) !== alg) continue
    if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.key_ops !== undefined && !jwk.key_ops.includes('verify'))) continue
    try {
      return resolveKey(`jwks kid ${kid}`, { kid, alg, key: jwk as JsonWebKey })
    } catch {
      // A key the local rules refuse (an RSA key under 2048 bits, a P-384 key labelled ES256)
      // verifies nothing.
    }
  }
  return null
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
  const { createLocalJWKSet, createRemoteJWKSet, customFetch } = await import('jose')
  let failedAt = -Infinity

  const remote = createRemoteJWKSet(url, {
    cacheMaxAge,
    cooldownDuration: cooldown,
    timeoutDuration: timeout,
    // jose's cooldown counts from the last successful fetch, so an endpoint that is down would be
    // asked again for every token; after a failure, wait a cooldown before the next attempt.
    // Everything that makes a fetch fail is decided here (status, size, JSON, the shape of a JWK
    // Set, with jose's own check), so that every failed fetch, and nothing else, starts that wait.
    [customFetch]: async (input: string, init: RequestInit) => {
      const wait = failedAt + cooldown - Date.now()
      if (wait > 0) throw new KeyLookupError(true, wait)
      try {
        const response = await fetch(input, init)
        // Redirects are not followed (jose asks for `redirect: 'manual'`): a 3xx lands here too.
        if (response.status !== 200) throw new Error(`JWKS answered ${response.status}`)
        const text = await boundedText(response)
        createLocalJWKSet(JSON.parse(text) as JSONWebKeySet)
        return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } })
      } catch {
        failedAt = Date.now()
        throw new KeyLookupError(true, cooldown)
      }
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
      // A failed fetch arrives as a KeyLookupError from the fetch above. Anything else is about
      // the key the token names: none, several, or one that cannot be read (a point of the wrong
      // length, say), which verifies nothing. That is the token's 401, never a failed fetch: a
      // kid anyone can copy into a made-up token must not hold off the next fetch of the set.
      if (error instanceof KeyLookupError) throw error
      // Except a private key published under that kid: the issuer's fault, not the token's.
      if ((error as { code?: string }).code === 'ERR_JWKS_INVALID') throw new KeyLookupError(true, cooldown)
      throw new KeyLookupError(false)
    }
    let verifier = verifiers.get(key)
    if (verifier === undefined) {
      // The set is there: jose just picked a key from it.
      const resolved = publishedKey(remote.jwks() as JSONWebKeySet, kid, alg as SigningAlgorithm)
      verifier = resolved === null ? null : makeVerifier(resolved)
      verifiers.set(key, verifier)
    }
    if (verifier === null) throw new KeyLookupError(false)
    return verifier
  }

  return { verifierFor }
}
