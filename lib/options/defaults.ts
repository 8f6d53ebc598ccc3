import fs from 'node:fs'
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
  introspectionPath: '/introspect',
  jwksPath: '/.well-known/jwks.json',
  accessTokenTtl: 900,
  clockTolerance: 5,
  realm: 'api',
  defaultClientId: 'public',
  publicClient: false,
  metadata: true,
  bodyLimit: 4096,
  openapi: true,
  password: {
    /** OWASP Password Storage Cheat Sheet: argon2id with m = 19 MiB, t = 2, p = 1 at least. */
    memoryCost: 19456,
    timeCost: 2,
    parallelism: 1,
    maxLength: 1024,
    /**
     * Logins that may wait for a hashing slot. argon2's memory is taken only by a running hash;
     * a waiting login holds its request (a body within `bodyLimit`) and a closure, a few KB. So
     * the bound is set by memory: all of them together hold less than one running hash does,
     * and a flood of a few hundred connections waits its turn instead of being refused at once,
     * which would only make each client send again at once.
     */
    maxQueue: 1000,
    /**
     * Milliseconds a login may wait for a hashing slot before it is answered 503 with
     * `Retry-After`, without having been hashed. Waiting costs the server nothing; a refusal costs
     * it a whole request, and invites the next one at once.
     */
    maxWait: 2000,
    /** The pool's threads are the host's as well: left as they are unless asked. */
    threadPoolPriority: 0
  },
  /** Per client address on the token endpoints, counted before the body is read. */
  rateLimit: { max: 30, timeWindow: MINUTE },
  /** Per introspecting client (RFC 7662 §4: token scanning); the per-IP limit applies as well. */
  introspectionRateLimit: { max: 600, timeWindow: MINUTE },
  loginThrottle: {
    /** Also the limit on failed client authentications per (client_id, source). */
    perUsernameAndIp: { max: 5, timeWindow: 15 * MINUTE },
    /**
     * Capped exponential backoff, as AWS Cognito does it; it never refuses a known source. The
     * count is forgotten after 12 hours without a failure (Keycloak's failure reset time): with
     * a shorter window, pausing until it ends would buy a guesser ten free attempts each time.
     */
    perUsername: { freeAttempts: 10, maxDelay: 15 * MINUTE, timeWindow: 12 * 60 * MINUTE },
    /** How long a source a user logged in from stays known to the throttle, in seconds. */
    knownSourceTtl: 30 * DAY_SECONDS,
    /** Whether `Alice` and `alice` are counted apart (as NFKC alone); by default case is folded. */
    caseSensitiveUsernames: false
  },
  refreshTokens: false,
  /**
   * The lifetimes when `refreshTokens` is on, in seconds; `retryGrace`: how long after a refresh
   * the replaced token is a retry, not reuse (RFC 9700 §4.14.2).
   */
  refreshTokenLifetimes: { idleTtl: 14 * DAY_SECONDS, absoluteTtl: 90 * DAY_SECONDS, retryGrace: 10 },
  revocableAccessTokens: false,
  browserSessions: false,
  /**
   * The settings when `browserSessions` is on: the header a page sends (`x-token-delivery: cookie`),
   * the refresh cookie's name, device cookies, and how many failed logins lock one device cookie out.
   */
  browserSessionOptions: {
    header: 'x-token-delivery',
    cookieName: '__Host-refresh-token',
    deviceCookie: true,
    deviceLockout: { max: 5, timeWindow: 15 * MINUTE }
  },
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
  redisPrefix: 'fastify-token-auth:',
  /** Milliseconds a Redis call may take before it counts as failed (503). */
  redisCommandTimeout: 1000
})

/**
 * The CPU time the process may use, in CPUs, from its cgroup's quota (v2 `cpu.max`, else v1
 * `cpu.cfs_quota_us` over `cpu.cfs_period_us`); `undefined` when there is none or it cannot be
 * read. A container limited to one CPU on a large host sees every host CPU in
 * `os.availableParallelism()`, but gets only its quota's worth of time.
 */
function cgroupCpuQuota (): number | undefined {
  const read = (file: string): string | undefined => {
    try {
      return fs.readFileSync(file, 'utf8').trim()
    } catch {
      return undefined
    }
  }
  const v2 = read('/sys/fs/cgroup/cpu.max')?.split(/\s+/)
  const [quota, period] = v2 ?? [read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'), read('/sys/fs/cgroup/cpu/cpu.cfs_period_us')]
  // "max" (v2) and -1 (v1) mean no quota; anything unreadable counts as none.
  const cpus = Number(quota) / Number(period)
  return Number.isFinite(cpus) && cpus > 0 ? cpus : undefined
}

/**
 * The CPUs this process can keep busy at once: the ones it may run on (its affinity, through
 * `os.availableParallelism()`), and no more than its cgroup's CPU quota, rounded down, but one at
 * least.
 */
export function availableCpus (): number {
  const quota = cgroupCpuQuota()
  const cpus = os.availableParallelism()
  return Math.max(1, quota === undefined ? cpus : Math.min(cpus, Math.floor(quota)))
}

/**
 * The default `password.maxConcurrent`: the size of libuv's thread pool (`UV_THREADPOOL_SIZE`,
 * 4 unless set), where argon2 runs, but at most one less than the CPUs the process can keep busy
 * (`availableCpus`), and at least one. argon2 keeps a CPU busy for the whole hash: with one
 * running on every CPU the event loop must win CPU time from them, and every request the app
 * serves waits while a login flood is hashed. More hashes than CPUs add no throughput, only
 * memory and a longer wait.
 */
export function defaultHashingConcurrency (): number {
  // libuv reads the variable as a whole number, as atoi does.
  const poolSize = Math.floor(Number(process.env.UV_THREADPOOL_SIZE))
  return Math.max(1, Math.min(poolSize > 0 ? poolSize : 4, availableCpus() - 1))
}
