import argon2 from 'argon2'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { createBcryptVerifier, isBcryptHash } from './bcrypt.js'
import { createLimiter, LimiterFullError, type Limiter } from './limiter.js'
import { lowerThreadPoolPriority } from './thread-priority.js'
import { hashingBusy, oauthError } from '../errors.js'
import { DEFAULTS } from '../options/defaults.js'
import { watchClient } from '../util/client-gone.js'
import type { PasswordOptions } from '../options/types.js'

/** argon2id parameters; the defaults are OWASP's minimum (m = 19 MiB, t = 2, p = 1). */
export interface HashParameters {
  memoryCost?: number
  timeCost?: number
  parallelism?: number
}

const OWASP_DEFAULTS = { memoryCost: DEFAULTS.password.memoryCost, timeCost: DEFAULTS.password.timeCost, parallelism: DEFAULTS.password.parallelism }

/**
 * Hashes a password with argon2id. The password is normalised to NFC first, so the same
 * characters typed on two keyboards give the same hash.
 */
export async function hashPassword (password: string, parameters: HashParameters = {}): Promise<string> {
  if (typeof password !== 'string' || password.length === 0) throw new TypeError('password must be a non-empty string')
  const hash = await argon2.hash(password.normalize('NFC'), { ...OWASP_DEFAULTS, ...parameters, type: argon2.argon2id })
  // node-argon2 writes the parameters as m,p,t (ranisalt/node-argon2#559); the PHC string format
  // says m,t,p, and strict readers (the reference C code, libsodium, PHP) refuse any other order.
  return hash.replace(/^(\$argon2id\$v=\d+\$)m=(\d+),p=(\d+),t=(\d+)\$/, '$1m=$2,t=$4,p=$3$')
}

/**
 * Checks a password against an argon2 hash. Resolves `false`, never rejects, for a wrong
 * password or an unreadable hash.
 */
export async function verifyPassword (hash: string, password: string): Promise<boolean> {
  if (typeof hash !== 'string' || typeof password !== 'string') return false
  try {
    return await argon2.verify(hash, password.normalize('NFC'))
  } catch {
    return false
  }
}

const ARGON2_HASH = /^\$(argon2(?:id|i|d))\$v=(\d+)\$([^$]+)\$/

/**
 * True when `hash` is weaker than `parameters` asks for (OWASP: rehash on login when the
 * parameters change): not argon2id, an older version, or less memory or fewer iterations.
 */
export function needsRehash (hash: string, parameters: HashParameters = {}): boolean {
  const wanted = { ...OWASP_DEFAULTS, ...parameters }
  const match = ARGON2_HASH.exec(hash)
  if (match === null) return true
  const [, type, version, list] = match
  // Read the parameters by name: hashes made by node-argon2 itself list them as m,p,t.
  const params = new Map((list as string).split(',').map((pair) => pair.split('=', 2) as [string, string | undefined]))
  const m = Number(params.get('m'))
  const t = Number(params.get('t'))
  return type !== 'argon2id' || Number(version) < 0x13 || !(m >= wanted.memoryCost) || !(t >= wanted.timeCost)
}

/** The plugin's hashing: bounded concurrency, and the same cost whether or not the user exists. */
export interface PasswordHasher {
  /**
   * Verifies `password` against `hash`; with no hash (unknown user) it verifies against a
   * dummy hash of the same parameters, so the answer takes as long either way (OWASP
   * Authentication Cheat Sheet; ASVS 6.3.8). Rejects with `LimiterFullError` when saturated,
   * or when it waited `maxWait` for a slot.
   */
  verify: (hash: string | undefined, password: string) => Promise<boolean>
  /**
   * `verify` for the token endpoints: a saturated pool rejects with the OAuth2 answer, 503
   * `temporarily_unavailable` with `Retry-After` (RFC 6749 §5.2 lets a server say so). A login
   * whose client goes while it waits for a slot is dropped without being hashed (and gets the
   * same answer, which no one reads): a flood of logins sent and given up at once cannot spend
   * the hashing on no one while the users who wait for an answer wait longer.
   */
  check: (hash: string | undefined, password: string, request: FastifyRequest) => Promise<boolean>
  /** Hashes with the configured parameters, through the same bound. */
  hash: (password: string) => Promise<string>
  needsRehash: (hash: string) => boolean
  readonly limiter: Limiter
}

/**
 * `fastify.passwordHashing`: the plugin's hashing for a host's own routes (sign-up, password
 * change), with the plugin's parameters and within the bound that logins have, so that a flood
 * of sign-ups can neither queue hashes without limit beside the logins nor go around the bound.
 */
export interface PasswordHashing {
  /**
   * Hashes `password` (argon2id, the plugin's `password` parameters). Rejects with
   * `FST_TOKEN_AUTH_HASHING_BUSY` (503, `Retry-After: 1`) when the pool is full. It does not
   * apply `password.maxLength`: refuse a longer password in the route, since login refuses it.
   */
  hash: (password: string) => Promise<string>
  /**
   * Verifies `password` against an argon2 or bcrypt `hash`; with no hash (an unknown user) it
   * does the same work and resolves false. Rejects as `hash` does when the pool is full.
   */
  verify: (hash: string | undefined, password: string) => Promise<boolean>
}

/** The host's view of `hasher`: a full pool becomes the 503 a Fastify error handler sends as it is. */
export function passwordHashing (hasher: PasswordHasher): PasswordHashing {
  const busy = (error: unknown): never => {
    if (error instanceof LimiterFullError) throw hashingBusy()
    throw error
  }
  return {
    hash: async (password) => await hasher.hash(password).catch(busy),
    verify: async (hash, password) => await hasher.verify(hash, password).catch(busy)
  }
}

/**
 * `log` receives the one error about a missing `bcrypt` peer. Legacy bcrypt hashes are verified
 * through the same limiter as argon2 ones, so they count against the same bound.
 */
export async function createPasswordHasher (options: Required<PasswordOptions>, log: FastifyBaseLogger): Promise<PasswordHasher> {
  const parameters = { memoryCost: options.memoryCost, timeCost: options.timeCost, parallelism: options.parallelism }
  const limiter = createLimiter(options.maxConcurrent, options.maxQueue, options.maxWait)
  if (options.threadPoolPriority > 0) {
    // Not a reason to refuse to start (a laptop without /proc, a sandbox that forbids it): the
    // hashing is as safe at any priority, only the event loop's latency under a flood differs.
    await lowerThreadPoolPriority(options.threadPoolPriority).catch((error: unknown) => {
      // fs.readlink and os.setPriority reject with Errors only.
      log.warn(`password.threadPoolPriority: the thread pool's priority is left as it was (${(error as Error).message})`)
    })
  }
  const started = performance.now()
  const dummyHash = await hashPassword(randomBytes(16).toString('base64url'), parameters)
  // How long a hash of the configured parameters takes, as the recent ones took it. An unknown
  // user verifies the dummy hash, so a wrong password for an account whose hash is older and
  // cheaper (rehashed only at its next login) would be refused sooner than an unknown user is,
  // and the time would tell the account exists (OWASP Authentication Cheat Sheet, "Authentication
  // Responses"; CWE-208). Such a refusal is answered no sooner than that. A hash slower than the
  // configured ones (a bcrypt of a high cost) cannot be made faster, and is left as it is.
  let typicalMs = performance.now() - started
  const verifyBcrypt = createBcryptVerifier(log)
  const verify = async (hash: string | undefined, password: string, signal?: AbortSignal): Promise<boolean> => {
    let padMs = 0
    const ok = await limiter.run(async () => {
      const begun = performance.now()
      const result = hash !== undefined && isBcryptHash(hash)
        ? await verifyBcrypt(hash, password)
        : await verifyPassword(hash ?? dummyHash, password) && hash !== undefined
      const took = performance.now() - begun
      if (hash === undefined || !needsRehash(hash, parameters)) typicalMs += (took - typicalMs) / 8
      else if (!result) padMs = typicalMs - took
      return result
    }, signal)
    // After the slot is given back: waiting costs a timer, not a hashing turn.
    if (padMs > 0) await sleep(padMs)
    return ok
  }
  return {
    limiter,
    verify,
    async check (hash, password, request) {
      const client = watchClient(request)
      try {
        return await verify(hash, password, client.signal)
      } catch (error) {
        if (error instanceof LimiterFullError) throw oauthError('temporarily_unavailable', 'The server is busy; retry later', 1)
        /* c8 ignore next 2 -- verify resolves false for every bad input; this is for a bug */
        throw error
      } finally {
        client.stop()
      }
    },
    hash: (password) => limiter.run(() => hashPassword(password, parameters)),
    needsRehash: (hash) => needsRehash(hash, parameters)
  }
}
