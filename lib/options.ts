import type { FastifyRequest } from 'fastify'
import { InvalidOptionError, WeakSecretError } from './errors.js'
import type { AuthStore } from './stores/types.js'
import type { AuthEvent } from './events.js'
import { defaultHashingConcurrency } from './concurrency.js'

/** A user as the host's `findUser` returns it. */
export interface UserRecord {
  /** The token's `sub`; the username when absent. */
  id?: string | number
  username: string
  /** An argon2 hash, as `hashPassword` makes. */
  passwordHash: string
  /** A disabled user cannot log in; the answer is the same as for a wrong password. */
  disabled?: boolean
  /** The scopes this user may be granted. */
  scopes?: readonly string[]
}

/** A client allowed at the token endpoint (RFC 6749 §2). */
export interface ClientRecord {
  /** The `client_id`. */
  id: string
  /** An argon2 hash of the client secret; absent for a public client, which is known by its id alone. */
  secretHash?: string
}

/** argon2id parameters and the bounds on password hashing. */
export interface PasswordOptions {
  /** Memory in KiB; default 19456 (OWASP's minimum for argon2id). */
  memoryCost?: number
  /** Iterations; default 2. */
  timeCost?: number
  /** Lanes; default 1. */
  parallelism?: number
  /** Longest password accepted, in characters; longer ones are refused before any hashing. Default 1024. */
  maxLength?: number
  /** Password verifications that run at once; default the libuv thread-pool size. */
  maxConcurrent?: number
  /** Verifications that may wait for a turn; past that the token endpoint answers 503. Default 8 × maxConcurrent. */
  maxQueue?: number
}

/** A fixed window: at most `max` attempts in `timeWindow` milliseconds. */
export interface WindowLimit {
  max?: number
  timeWindow?: number
}

/** Capped exponential backoff per username, as AWS Cognito does it. */
export interface BackoffLimit {
  /** Failures allowed before waits begin; default 10. */
  freeAttempts?: number
  /** Longest wait in milliseconds; default 15 minutes. */
  maxDelay?: number
  /** Failures are forgotten after this long without one, in milliseconds; default 15 minutes. */
  timeWindow?: number
}

/** Limits on failed logins; `false` turns one off. */
export interface LoginThrottleOptions {
  /** Failures per (username, client IP); default 5 per 15 minutes. */
  perUsernameAndIp?: WindowLimit | false
  /** Failures per username across all IPs, with a growing wait. */
  perUsername?: BackoffLimit | false
}

/** Options of the plugin. */
export interface FastifyJwtAuthOptions {
  /** The HMAC secret that signs access tokens (HS256): at least 32 bytes. */
  secret: string | Buffer
  /**
   * Looks a user up by username for the password grant. Without it, no `/token` route is
   * registered and the plugin only verifies tokens.
   */
  findUser?: (username: string, request: FastifyRequest) => Promise<UserRecord | null | undefined> | UserRecord | null | undefined
  /** Path of the token endpoint; default `/token`. The registration prefix applies. */
  tokenPath?: string
  /** Access-token lifetime in seconds; default 900. */
  accessTokenTtl?: number
  /** The `iss` claim, signed and required on verify. */
  issuer?: string
  /** The `aud` claim, signed and required on verify (any one of a list). */
  audience?: string | string[]
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds; default 5, at most 300. */
  clockTolerance?: number
  /** The realm in `WWW-Authenticate` challenges; default `api`. */
  realm?: string
  /** The `client_id` claim when no client authenticated; default `public`. */
  defaultClientId?: string
  /** Clients allowed at the token endpoint. When set, every token request must authenticate as one. */
  clients?: readonly ClientRecord[]
  /** argon2id parameters and hashing bounds. */
  password?: PasswordOptions
  /** Receives a fresh hash after a login with an outdated one, so the host can store it. */
  onPasswordRehash?: (user: UserRecord, newHash: string) => void | Promise<void>
  /** Per-IP limit on the token endpoint (through `@fastify/rate-limit`); default 30 a minute. */
  rateLimit?: WindowLimit | false
  /** Limits on failed logins; `false` turns both off. */
  loginThrottle?: LoginThrottleOptions | false
  /** Largest token request body in bytes; default 4096. */
  bodyLimit?: number
  /** Where counters live; default an in-memory store for one process. */
  store?: AuthStore
  /** Receives every security event (also logged through the request logger). */
  onAuthEvent?: (event: AuthEvent) => void
}

export interface ResolvedOptions {
  secret: string | Buffer
  findUser: FastifyJwtAuthOptions['findUser']
  tokenPath: string
  accessTokenTtl: number
  issuer: string | undefined
  audience: string | string[] | undefined
  clockTolerance: number
  realm: string
  defaultClientId: string
  clients: ReadonlyMap<string, ClientRecord> | undefined
  password: Required<PasswordOptions>
  onPasswordRehash: FastifyJwtAuthOptions['onPasswordRehash']
  rateLimit: Required<WindowLimit> | false
  perUsernameAndIp: Required<WindowLimit> | false
  perUsername: Required<BackoffLimit> | false
  bodyLimit: number
  store: AuthStore | undefined
  onAuthEvent: FastifyJwtAuthOptions['onAuthEvent']
}

const MINUTE = 60_000

// Secrets copied from tutorials and templates: refused whatever their length.
const PLACEHOLDER_SECRET = /^(?:(?:my|your|the|super|jwt|app|change|some|test|default)[-_ .]*)*(?:secret|secret[-_ .]*key|key|password|changeme|change[-_ .]*me)(?:[-_ .]*(?:here|key|change[-_ .]*(?:this|me)|in[-_ .]*production|please|[0-9]+(?:[-_ .]*bits?)?))*$/i

function fail (name: string, problem: string): never {
  throw new InvalidOptionError(name, problem)
}

function positiveInt (name: string, value: unknown, fallback: number, max = Number.MAX_SAFE_INTEGER, min = 1): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, `must be a whole number from ${min} to ${max}`)
  }
  return value
}

function optionalString (name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0) fail(name, 'must be a non-empty string')
  return value
}

function checkSecret (secret: unknown): string | Buffer {
  if (secret === undefined || secret === null || secret === '') {
    fail('secret', 'is required: at least 32 random bytes (`npx fastify-jwt-auth generate-secret` makes one)')
  }
  if (typeof secret !== 'string' && !Buffer.isBuffer(secret)) fail('secret', 'must be a string or a Buffer')
  const bytes = Buffer.from(secret)
  // RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
  if (bytes.length < 32) throw new WeakSecretError('must be at least 32 bytes long for HS256 (RFC 7518 §3.2)')
  if (PLACEHOLDER_SECRET.test(bytes.toString('latin1')) || new Set(bytes).size < 8) {
    throw new WeakSecretError('looks like a placeholder; use a random value (`npx fastify-jwt-auth generate-secret`)')
  }
  return secret
}

function windowLimit (name: string, value: WindowLimit | false | undefined, max: number, timeWindow: number): Required<WindowLimit> | false {
  if (value === false) return false
  if (value !== undefined && (typeof value !== 'object' || value === null)) fail(name, 'must be an object or false')
  return {
    max: positiveInt(`${name}.max`, value?.max, max),
    timeWindow: positiveInt(`${name}.timeWindow`, value?.timeWindow, timeWindow)
  }
}

function checkClients (clients: unknown): ReadonlyMap<string, ClientRecord> | undefined {
  if (clients === undefined) return undefined
  if (!Array.isArray(clients) || clients.length === 0) fail('clients', 'must be a non-empty array of { id, secretHash? }')
  const map = new Map<string, ClientRecord>()
  for (const client of clients as ClientRecord[]) {
    if (typeof client?.id !== 'string' || client.id.length === 0) fail('clients', 'needs a non-empty string `id` on every client')
    if (client.secretHash !== undefined && (typeof client.secretHash !== 'string' || !client.secretHash.startsWith('$argon2'))) {
      fail('clients', `client "${client.id}" needs an argon2 \`secretHash\` (hashPassword makes one)`)
    }
    if (map.has(client.id)) fail('clients', `lists client "${client.id}" twice`)
    map.set(client.id, { ...client })
  }
  return map
}

/** Checks the options and fills in defaults; never changes the caller's object. */
export function resolveOptions (options: FastifyJwtAuthOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options', 'must be an object')
  const { findUser, onPasswordRehash, onAuthEvent, store } = options
  if (findUser !== undefined && typeof findUser !== 'function') fail('findUser', 'must be a function')
  if (onPasswordRehash !== undefined && typeof onPasswordRehash !== 'function') fail('onPasswordRehash', 'must be a function')
  if (onAuthEvent !== undefined && typeof onAuthEvent !== 'function') fail('onAuthEvent', 'must be a function')
  if (store !== undefined && typeof store?.reserve !== 'function') fail('store', 'must implement the AuthStore interface')

  const tokenPath = options.tokenPath ?? '/token'
  if (typeof tokenPath !== 'string' || !tokenPath.startsWith('/')) fail('tokenPath', 'must be a path starting with "/"')

  const realm = options.realm ?? 'api'
  // The realm goes into a quoted-string (RFC 9110 §11.5); keep it plain.
  if (typeof realm !== 'string' || !/^[\x20-\x7e]+$/.test(realm) || /["\\]/.test(realm)) {
    fail('realm', 'must be printable ASCII without quotes or backslashes')
  }

  const audience = options.audience
  if (audience !== undefined && !(typeof audience === 'string' && audience.length > 0) &&
    !(Array.isArray(audience) && audience.length > 0 && audience.every((a) => typeof a === 'string' && a.length > 0))) {
    fail('audience', 'must be a non-empty string or a non-empty array of them')
  }

  const clockTolerance = options.clockTolerance ?? 5
  if (typeof clockTolerance !== 'number' || !Number.isFinite(clockTolerance) || clockTolerance < 0 || clockTolerance > 300) {
    fail('clockTolerance', 'must be a number of seconds from 0 to 300')
  }

  const password = options.password === undefined ? {} : options.password
  if (typeof password !== 'object' || password === null) fail('password', 'must be an object')
  // OWASP Password Storage Cheat Sheet: argon2id with m >= 19 MiB, t >= 2, p = 1.
  const memoryCost = positiveInt('password.memoryCost', password.memoryCost, 19456, 4 * 1024 * 1024)
  if (memoryCost < 8) fail('password.memoryCost', 'must be at least 8 KiB')
  const maxConcurrent = positiveInt('password.maxConcurrent', password.maxConcurrent, defaultHashingConcurrency(), 1024)

  // `null` is a mistake, not "the defaults": only `undefined` means that.
  const throttle = options.loginThrottle === undefined ? {} : options.loginThrottle
  if (throttle !== false && (typeof throttle !== 'object' || throttle === null)) fail('loginThrottle', 'must be an object or false')
  const perUsername = throttle === false ? false : throttle.perUsername
  if (perUsername !== undefined && perUsername !== false && (typeof perUsername !== 'object' || perUsername === null)) {
    fail('loginThrottle.perUsername', 'must be an object or false')
  }

  return {
    secret: checkSecret(options.secret),
    findUser,
    tokenPath,
    accessTokenTtl: positiveInt('accessTokenTtl', options.accessTokenTtl, 900, 365 * 24 * 3600),
    issuer: optionalString('issuer', options.issuer),
    audience,
    clockTolerance,
    realm,
    defaultClientId: optionalString('defaultClientId', options.defaultClientId) ?? 'public',
    clients: checkClients(options.clients),
    password: {
      memoryCost,
      timeCost: positiveInt('password.timeCost', password.timeCost, 2, 100),
      parallelism: positiveInt('password.parallelism', password.parallelism, 1, 64),
      maxLength: positiveInt('password.maxLength', password.maxLength, 1024, 65536),
      maxConcurrent,
      // 0 is meaningful: no waiting at all, a full pool answers 503 at once.
      maxQueue: positiveInt('password.maxQueue', password.maxQueue, 8 * maxConcurrent, Number.MAX_SAFE_INTEGER, 0)
    },
    onPasswordRehash,
    rateLimit: windowLimit('rateLimit', options.rateLimit, 30, MINUTE),
    perUsernameAndIp: throttle === false ? false : windowLimit('loginThrottle.perUsernameAndIp', throttle.perUsernameAndIp, 5, 15 * MINUTE),
    perUsername: perUsername === false || throttle === false
      ? false
      : {
          freeAttempts: positiveInt('loginThrottle.perUsername.freeAttempts', perUsername?.freeAttempts, 10),
          maxDelay: positiveInt('loginThrottle.perUsername.maxDelay', perUsername?.maxDelay, 15 * MINUTE),
          timeWindow: positiveInt('loginThrottle.perUsername.timeWindow', perUsername?.timeWindow, 15 * MINUTE)
        },
    bodyLimit: positiveInt('bodyLimit', options.bodyLimit, 4096, 1024 * 1024),
    store,
    onAuthEvent
  }
}
