import { createHash, createPrivateKey, createPublicKey, KeyObject, type JsonWebKey } from 'node:crypto'
import { WeakSecretError } from '../errors.js'
import { fail, wholeNumber } from './checks.js'
import { DEFAULTS } from './defaults.js'

/** The algorithms a key can be for (RFC 7518 §3.1, RFC 8037 §3.1 for EdDSA with Ed25519). */
export type SigningAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'RS256' | 'PS256' | 'ES256' | 'EdDSA'

/** Key material: a PEM string or Buffer, a `KeyObject`, a JWK, or for HS* the raw secret. */
export type KeyMaterial = string | Buffer | KeyObject | JsonWebKey

/** One entry of the `keys` option. */
export interface KeyOption {
  /** The key id put in the `kid` header of the tokens this key signs; taken from a JWK's own `kid` when absent. */
  kid?: string
  /** The one algorithm this key signs and verifies with; taken from a JWK's own `alg` when absent. */
  alg?: SigningAlgorithm
  /**
   * The key. HS*: the shared secret (string, Buffer, secret `KeyObject` or `oct` JWK), at least as
   * long as the hash. Others: a private key (signs and verifies) or a public key (verifies only),
   * as PEM, `KeyObject` or JWK.
   */
  key: KeyMaterial
}

/** A key checked and turned into the forms @fastify/jwt takes. */
export interface ResolvedKey {
  /** `undefined` only for the one key of the `secret` shortcut, whose tokens carry no `kid`. */
  kid: string | undefined
  alg: SigningAlgorithm
  /** The HMAC secret or a PKCS#8 PEM private key; `undefined` for a public key, which only verifies. */
  signingKey: Buffer | string | undefined
  /** The HMAC secret or an SPKI PEM public key. */
  verifyingKey: Buffer | string
  /** What the JWKS publishes (RFC 7517 §4); `undefined` for an HMAC secret, which is never published. */
  publicJwk: JsonWebKey | undefined
}

export const ALGORITHMS: readonly SigningAlgorithm[] = Object.freeze(['HS256', 'HS384', 'HS512', 'RS256', 'PS256', 'ES256', 'EdDSA'])
/** The algorithms whose keys can be published and fetched: everything but HMAC. */
export const ASYMMETRIC_ALGORITHMS: readonly SigningAlgorithm[] = Object.freeze(['RS256', 'PS256', 'ES256', 'EdDSA'])

// RFC 7518 §3.2: an HMAC key at least as long as the hash output.
const HMAC_BYTES: Partial<Record<SigningAlgorithm, number>> = { HS256: 32, HS384: 48, HS512: 64 }
// node:crypto's asymmetricKeyType (and curve) each algorithm needs.
const KEY_TYPE: Partial<Record<SigningAlgorithm, string>> = { RS256: 'rsa', PS256: 'rsa', ES256: 'ec', EdDSA: 'ed25519' }
// RFC 7518 §3.3 and §3.5: RSA keys of 2048 bits or more.
const MIN_RSA_BITS = 2048
const MAX_KID_LENGTH = 256

// Secrets copied from tutorials and templates: refused whatever their length.
const PLACEHOLDER_SECRET = /^(?:(?:my|your|the|super|jwt|app|change|some|test|default)[-_ .]*)*(?:secret|secret[-_ .]*key|key|password|changeme|change[-_ .]*me)(?:[-_ .]*(?:here|key|change[-_ .]*(?:this|me)|in[-_ .]*production|please|[0-9]+(?:[-_ .]*bits?)?))*$/i

/** Refuses an HMAC secret shorter than its hash (RFC 7518 §3.2) or one that is a known placeholder. */
export function checkSecretStrength (name: string, bytes: Buffer, alg: SigningAlgorithm = 'HS256'): void {
  const min = HMAC_BYTES[alg] as number
  if (bytes.length < min) throw new WeakSecretError(name, `must be at least ${min} bytes long for ${alg} (RFC 7518 §3.2)`)
  if (PLACEHOLDER_SECRET.test(bytes.toString('latin1')) || new Set(bytes).size < 8) {
    throw new WeakSecretError(name, 'looks like a placeholder; use a random value (`npx fastify-token-auth generate-secret`)')
  }
}

function isJwk (value: unknown): value is JsonWebKey {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !(value instanceof KeyObject) &&
    typeof (value as JsonWebKey).kty === 'string'
}

/** The DER encodings node:crypto reads a public or private key from. */
const DER_KEYS: ReadonlyArray<(der: Buffer) => KeyObject> = [
  (der) => createPublicKey({ key: der, format: 'der', type: 'spki' }),
  (der) => createPublicKey({ key: der, format: 'der', type: 'pkcs1' }),
  (der) => createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
  (der) => createPrivateKey({ key: der, format: 'der', type: 'pkcs1' }),
  (der) => createPrivateKey({ key: der, format: 'der', type: 'sec1' })
]

/**
 * Checks an HMAC secret: long enough for `alg`, and no key. A public key used as an HMAC secret is
 * how algorithm confusion starts (RFC 8725 §2.1): whoever has the public key could sign. Refused
 * in every form a key comes in.
 */
function checkSharedSecret (name: string, bytes: Buffer, alg: SigningAlgorithm): void {
  if (holdsKey(bytes)) fail(name, `is for ${alg} but holds a public or private key (PEM, DER or JWK); HS* keys are random shared secrets`)
  checkSecretStrength(name, bytes, alg)
}

/** Whether `bytes` are a key rather than a secret: a PEM, a JWK's JSON, or a DER key. */
function holdsKey (bytes: Buffer): boolean {
  if (bytes.includes('-----BEGIN')) return true
  try {
    if (isJwk(JSON.parse(bytes.toString('utf8')))) return true
  } catch {
    // Not JSON: a secret, or a DER key.
  }
  return DER_KEYS.some((read) => {
    try {
      read(bytes)
      return true
    } catch {
      return false
    }
  })
}

function hmacKey (name: string, alg: SigningAlgorithm, key: KeyMaterial): Buffer | string {
  let secret: Buffer | string
  if (typeof key === 'string' || Buffer.isBuffer(key)) {
    secret = key
  } else if (key instanceof KeyObject && key.type === 'secret') {
    secret = key.export()
  } else if (isJwk(key) && key.kty === 'oct' && typeof key.k === 'string') {
    secret = Buffer.from(key.k, 'base64url')
  } else {
    fail(name, `is for ${alg}: it needs a shared secret (string, Buffer, secret KeyObject or "oct" JWK), not a public or private key`)
  }
  checkSharedSecret(name, Buffer.from(secret), alg)
  return secret
}

/** Reads any accepted form into node:crypto keys: the private key when there is one, and the public key. */
function asymmetricKey (name: string, key: KeyMaterial): { privateKey: KeyObject | undefined, publicKey: KeyObject } {
  if (key instanceof KeyObject) {
    if (key.type === 'private') return { privateKey: key, publicKey: createPublicKey(key) }
    if (key.type === 'public') return { privateKey: undefined, publicKey: key }
    fail(name, 'is a secret KeyObject; this algorithm needs a private or public key')
  }
  try {
    if (isJwk(key)) {
      if (key.d === undefined) return { privateKey: undefined, publicKey: createPublicKey({ key, format: 'jwk' }) }
      const privateKey = createPrivateKey({ key, format: 'jwk' })
      return { privateKey, publicKey: createPublicKey(privateKey) }
    }
    if (typeof key === 'string' || Buffer.isBuffer(key)) {
      let privateKey: KeyObject | undefined
      try {
        privateKey = createPrivateKey(key)
      } catch {
        // Not a private key: perhaps a public one (or a certificate), which only verifies.
      }
      return { privateKey, publicKey: privateKey === undefined ? createPublicKey(key) : createPublicKey(privateKey) }
    }
  } catch {
    // An encrypted PEM lands here too: decrypt it with createPrivateKey({ key, passphrase }) first.
  }
  fail(name, 'is not a readable PEM, KeyObject or JWK (an encrypted PEM must be decrypted into a KeyObject first)')
}

function checkKeyType (name: string, alg: SigningAlgorithm, publicKey: KeyObject): void {
  const type = publicKey.asymmetricKeyType as string
  // Every asymmetric KeyObject has its details; only their members vary by type.
  const details = publicKey.asymmetricKeyDetails as { namedCurve?: string, modulusLength?: number }
  const expected = KEY_TYPE[alg] as string
  if (type !== expected) fail(name, `is an ${type} key; ${alg} needs an ${expected} key`)
  if (alg === 'ES256' && details.namedCurve !== 'prime256v1') fail(name, 'is an EC key on another curve; ES256 needs P-256')
  if (expected === 'rsa' && (details.modulusLength as number) < MIN_RSA_BITS) {
    fail(name, `is an RSA key under ${MIN_RSA_BITS} bits (RFC 7518 §3.3)`)
  }
}

/**
 * Checks one key and prepares it. `name` is how errors refer to it (`keys[1]`). `kid` and `alg` may
 * come from the entry or from the JWK itself; when both are given they must agree.
 */
export function resolveKey (name: string, entry: KeyOption): ResolvedKey {
  if (typeof entry !== 'object' || entry === null || entry.key === undefined || entry.key === null) {
    fail(name, 'must be an object { kid, alg, key }')
  }
  const { key } = entry
  const jwk = isJwk(key) ? key : undefined
  for (const member of ['kid', 'alg'] as const) {
    if (entry[member] !== undefined && jwk?.[member] !== undefined && entry[member] !== jwk[member]) {
      fail(name, `says ${member} "${String(entry[member])}" but its JWK says "${String(jwk[member])}"`)
    }
  }
  if (jwk?.use !== undefined && jwk.use !== 'sig') fail(name, 'is a JWK whose "use" is not "sig"')
  const kid = entry.kid ?? jwk?.kid
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH) {
    fail(name, `needs a "kid": a non-empty string of at most ${MAX_KID_LENGTH} characters`)
  }
  const alg = (entry.alg ?? jwk?.alg) as SigningAlgorithm
  if (!ALGORITHMS.includes(alg)) fail(name, `needs an "alg", one of ${ALGORITHMS.join(', ')}`)

  if (HMAC_BYTES[alg] !== undefined) {
    const secret = hmacKey(`${name}.key`, alg, key)
    return { kid, alg, signingKey: secret, verifyingKey: secret, publicJwk: undefined }
  }
  const { privateKey, publicKey } = asymmetricKey(`${name}.key`, key)
  checkKeyType(`${name}.key`, alg, publicKey)
  return {
    kid,
    alg,
    signingKey: privateKey?.export({ type: 'pkcs8', format: 'pem' }) as string | undefined,
    verifyingKey: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' }
  }
}

/** Checks the `keys` option: a non-empty list of keys with distinct `kid`s. */
export function resolveKeys (keys: unknown): ResolvedKey[] {
  if (!Array.isArray(keys) || keys.length === 0) fail('keys', 'must be a non-empty array of { kid, alg, key }')
  const resolved = (keys as KeyOption[]).map((entry, i) => resolveKey(`keys[${i}]`, entry))
  const seen = new Set<string | undefined>()
  for (const { kid } of resolved) {
    if (seen.has(kid)) fail('keys', `lists kid "${kid}" twice`)
    seen.add(kid)
  }
  return resolved
}

// RFC 7638 §3.2: the members of each key type that its thumbprint covers.
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = { RSA: ['e', 'kty', 'n'], EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'] }

/** The RFC 7638 JWK thumbprint (SHA-256, base64url) of a public RSA, EC or OKP key: a stable, fresh `kid`. */
export function jwkThumbprint (jwk: JsonWebKey): string {
  const members = THUMBPRINT_MEMBERS[jwk.kty as string] as readonly string[]
  // The required members in lexicographic order, no whitespace (RFC 7638 §3.3).
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])))
  return createHash('sha256').update(canonical).digest('base64url')
}

/** How the JWKS client behaves in verify-only mode; times in milliseconds. */
export interface JwksClientOptions {
  /**
   * How long fetched keys are used before the set is fetched again, so the longest a key the
   * issuer withdrew keeps verifying: past it, the set is fetched before any token is checked, and
   * a key no longer in it verifies nothing (a failed fetch answers 503, never the old keys).
   * Default 5 minutes.
   */
  cacheMaxAge?: number
  /**
   * The shortest time between two fetches: a token with an unknown `kid` triggers at most one
   * fetch per cooldown, and so does a failed fetch. Default 30 seconds.
   */
  cooldown?: number
  /** How long one fetch may take; default 5 seconds. */
  timeout?: number
}

/** Where the keys come from: a list held in the process, or a JWKS fetched over HTTP (verify-only). */
export type KeySource =
  | { kind: 'local', keys: readonly ResolvedKey[] }
  | { kind: 'remote', url: URL, cacheMaxAge: number, cooldown: number, timeout: number }

function checkSecret (secret: unknown): string | Buffer {
  if (typeof secret !== 'string' && !Buffer.isBuffer(secret)) fail('secret', 'must be a string or a Buffer')
  checkSharedSecret('secret', Buffer.from(secret), 'HS256')
  return secret
}

/**
 * Resolves `secret`, `keys` or `jwksUrl` (exactly one) into the key source. `signs` says whether the
 * plugin issues tokens (it has `findUser`), in which case the first key must be able to sign.
 */
export function resolveKeySource (
  { secret, keys, jwksUrl, jwksClient }: { secret?: unknown, keys?: unknown, jwksUrl?: unknown, jwksClient?: JwksClientOptions },
  signs: boolean
): KeySource {
  const given = [secret, keys, jwksUrl].filter((v) => v !== undefined && v !== null && v !== '').length
  if (given === 0) {
    fail('secret', 'is required, or `keys`, or `jwksUrl` for verify-only: at least 32 random bytes (`npx fastify-token-auth generate-secret` makes one)')
  }
  if (given > 1) fail('keys', 'is one of `secret`, `keys` and `jwksUrl`; give only one of them')

  if (jwksUrl !== undefined && jwksUrl !== null && jwksUrl !== '') {
    if (signs) fail('jwksUrl', 'is for verify-only mode (no `findUser`); an app that issues tokens needs `keys` or `secret`')
    let url: URL | undefined
    try {
      url = new URL(String(jwksUrl))
    } catch {}
    if ((typeof jwksUrl !== 'string' && !(jwksUrl instanceof URL)) || url === undefined || !/^https?:$/.test(url.protocol)) {
      fail('jwksUrl', 'must be an http(s) URL')
    }
    if (jwksClient !== undefined && (typeof jwksClient !== 'object' || jwksClient === null)) fail('jwksClient', 'must be an object')
    const day = 24 * 3600 * 1000
    return {
      kind: 'remote',
      url,
      cacheMaxAge: wholeNumber('jwksClient.cacheMaxAge', jwksClient?.cacheMaxAge, DEFAULTS.jwksClient.cacheMaxAge, day),
      cooldown: wholeNumber('jwksClient.cooldown', jwksClient?.cooldown, DEFAULTS.jwksClient.cooldown, day),
      timeout: wholeNumber('jwksClient.timeout', jwksClient?.timeout, DEFAULTS.jwksClient.timeout, 60 * 1000)
    }
  }
  if (jwksClient !== undefined) fail('jwksClient', 'applies only with `jwksUrl`')

  if (keys === undefined || keys === null) {
    const shared = checkSecret(secret)
    // The one-key shortcut: HS256, and tokens without a `kid`, as before `keys` existed.
    return { kind: 'local', keys: [{ kid: undefined, alg: 'HS256', signingKey: shared, verifyingKey: shared, publicJwk: undefined }] }
  }
  const resolved = resolveKeys(keys)
  if (signs && (resolved[0] as ResolvedKey).signingKey === undefined) {
    fail('keys', 'starts with a public key, but the first key signs the tokens: put a private key or a secret first (or leave out `findUser` for verify-only)')
  }
  return { kind: 'local', keys: resolved }
}
