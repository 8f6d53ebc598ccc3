import os from 'node:os'

/** Deep-freezes a plain object of defaults, so no caller can change one by accident. */
function frozen<T extends object> (value: T): Readonly<T> {
  for (const inner of Object.values(value)) if (typeof inner === 'object' && inner !== null) frozen(inner)
  return Object.freeze(value)
}

const MINUTE = 60_000
const DAY_SECONDS = 24 * 3600

/**
 * Every default of the plugin's options, in one place. The README's options table is checked
 * against this object by a test (test/readme-options.test.ts), so the two cannot drift. Times
 * are milliseconds unless the name ends in `Ttl` (seconds, as `expires_in` is, RFC 6749 §5.1).
 */
export const DEFAULTS = frozen({
  tokenPath: '/token',
  revocationPath: '/revoke',
  jwksPath: '/.well-known/jwks.json',
  accessTokenTtl: 900,
  clockTolerance: 5,
  realm: 'api',
  defaultClientId: 'public',
  bodyLimit: 4096,
  openapi: true,
  /** OWASP Password Storage Cheat Sheet: argon2id with m = 19 MiB, t = 2, p = 1 at least. */
  password: { memoryCost: 19456, timeCost: 2, parallelism: 1, maxLength: 1024 },
  /** Per client address on the token endpoints, counted before the body is read. */
  rateLimit: { max: 30, timeWindow: MINUTE },
  loginThrottle: {
    perUsernameAndIp: { max: 5, timeWindow: 15 * MINUTE },
    /** Capped exponential backoff, as AWS Cognito does it. */
    perUsername: { freeAttempts: 10, maxDelay: 15 * MINUTE, timeWindow: 15 * MINUTE }
  },
  refreshTokens: false,
  /**
   * The lifetimes when `refreshTokens` is on, in seconds; `retryGrace`: how long after a refresh
   * the replaced token is a retry, not reuse (RFC 9700 §4.14.2).
   */
  refreshTokenLifetimes: { idleTtl: 14 * DAY_SECONDS, absoluteTtl: 90 * DAY_SECONDS, retryGrace: 10 },
  revocableAccessTokens: false,
  /** Verify-only mode checks `aud` against `audience` unless this says otherwise (RFC 9068 §4). */
  acceptAnyAudience: false,
  /** The settings when `revocableAccessTokens` is on: fail closed. */
  revocableAccessTokenOptions: { failOpen: false },
  /**
   * The JWKS client of verify-only mode. A key the issuer withdraws stops verifying at most
   * `cacheMaxAge` after the last fetch; an unknown `kid` refetches at once, at most once a `cooldown`.
   */
  jwksClient: { cacheMaxAge: 5 * MINUTE, cooldown: 30_000, timeout: 5000 }
})

/** Defaults of the stores' own factories (`createMemoryStore`, `createRedisStore`). */
export const STORE_DEFAULTS = frozen({
  /** Most keys of each kind the memory store holds. */
  maxEntries: 100_000,
  /** Prefix of every Redis key. */
  redisPrefix: 'fastify-jwt-auth:',
  /** Milliseconds a Redis call may take before it counts as failed (503). */
  redisCommandTimeout: 1000
})

/** Verifications that may wait for a hashing slot, per slot (`password.maxQueue` = this × `maxConcurrent`). */
export const QUEUED_PER_HASHING_SLOT = 8

/**
 * The default `password.maxConcurrent`: the size of libuv's thread pool (`UV_THREADPOOL_SIZE`,
 * 4 unless set), where argon2 runs, but at most one less than the CPUs the process may use, and
 * at least one. argon2 keeps a CPU busy for the whole hash: with one running on every CPU the
 * event loop must win CPU time from them, and every request the app serves waits while a login
 * flood is hashed. More hashes than CPUs add no throughput, only memory and a longer wait.
 */
export function defaultHashingConcurrency (): number {
  // libuv reads the variable as a whole number, as atoi does.
  const poolSize = Math.floor(Number(process.env.UV_THREADPOOL_SIZE))
  return Math.max(1, Math.min(poolSize > 0 ? poolSize : 4, os.availableParallelism() - 1))
}
