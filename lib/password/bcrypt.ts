import type { FastifyBaseLogger } from 'fastify'

/*
 * bcrypt hashes from the stack users migrate from (passlib/FastAPI, PHP, Rails, node's bcrypt).
 * They are verified through the optional peer dependency `bcrypt`, which ships prebuilt N-API
 * binaries inside its npm package and runs each comparison on the libuv thread pool, off the
 * event loop, like argon2. A successful login then hands an argon2id hash to `onPasswordRehash`,
 * so each legacy hash is replaced the first time its owner logs in.
 */

// Modular Crypt Format: $2a$ / $2b$ / $2y$, a two-digit cost from 04 to 31, then 22 characters of
// salt and 31 of digest in bcrypt's own base64 alphabet. $2x$ (crypt_blowfish's marker for hashes
// made with its sign-extension bug) is left out on purpose: those hashes cannot be verified safely.
const BCRYPT_HASH = /^\$2[aby]\$(?:0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/

/** True for a `$2a$`, `$2b$` or `$2y$` bcrypt hash. */
export function isBcryptHash (hash: string): boolean {
  return BCRYPT_HASH.test(hash)
}

/**
 * bcrypt keys its cipher with the first 72 bytes of the password and ignores the rest, so a typed
 * password of 72 bytes or more that matched may differ from the one the hash was made of past
 * that point. Rehashing it would make the typed one the password, locking out the real one.
 */
export const BCRYPT_KEY_BYTES = 72

/** True when `password` matching the bcrypt `hash` does not prove it is the password hashed. */
export function bcryptMayHaveTruncated (hash: string, password: string): boolean {
  return isBcryptHash(hash) && Buffer.byteLength(password) >= BCRYPT_KEY_BYTES
}

const PEER = 'bcrypt'

/** The part of the `bcrypt` package this plugin uses. */
interface BcryptPeer {
  compare: (data: string, encrypted: string) => Promise<boolean>
}

/** The one line an operator needs when a bcrypt hash meets an app without the peer. */
export const MISSING_PEER_MESSAGE =
  'a user has a bcrypt password hash, which needs the optional peer dependency "bcrypt": run `npm install bcrypt`; ' +
  'until then that user cannot log in'

/** Verifies bcrypt hashes, loading the `bcrypt` peer on first use. */
export type BcryptVerifier = (hash: string, password: string) => Promise<boolean>

export function createBcryptVerifier (log: FastifyBaseLogger): BcryptVerifier {
  let peer: Promise<BcryptPeer | undefined> | undefined

  function load (): Promise<BcryptPeer | undefined> {
    // Loaded once; a failure is logged once, not on every login of every legacy user.
    // A specifier in a variable: the peer is optional, so neither tsc nor a bundler may require it.
    peer ??= import(PEER).then(
      // `bcrypt` is CommonJS: its exports are the default export, from ESM and from our CJS build.
      (module: { default: BcryptPeer }) => module.default,
      (error: unknown) => {
        log.error({ err: error }, `fastify-token-auth: ${MISSING_PEER_MESSAGE}`)
        return undefined
      })
    return peer
  }

  return async function verifyBcrypt (hash, password) {
    const bcrypt = await load()
    // Without the peer the login fails with the one invalid_grant answer: a 500 here would tell
    // an attacker which accounts still carry a legacy hash.
    if (bcrypt === undefined) return false
    // $2y$ is PHP's name for the same algorithm as $2b$; node's bcrypt only reads the latter.
    // The password goes in as typed, not NFC-normalised: that is how passlib hashed it.
    return await bcrypt.compare(password, hash.replace(/^\$2y\$/, '$2b$'))
  }
}
