import type { FastifyRequest } from 'fastify'
import { InvalidOptionError } from './errors.js'
import { resolveKeySource, type JwksClientOptions, type KeyOption, type KeySource } from './keys.js'
import type { AuthStore } from './stores/types.js'
import type { AuthEvent } from './events.js'
import type { CustomClaims } from './authenticate.js'
import { SCOPE_TOKEN } from './authenticate.js'
import { defaultHashingConcurrency } from './concurrency.js'

/** A user as the host's `findUser` returns it. */
export interface UserRecord {
  /** The token's `sub`; the username when absent. */
  id?: string | number
  username: string
  /**
   * An argon2 hash, as `hashPassword` makes; or a `$2a$`/`$2b$`/`$2y$` bcrypt hash from another
   * stack, which needs the optional peer `bcrypt` and is upgraded through `onPasswordRehash`.
   */
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

/** Refresh-token lifetimes, in seconds. */
export interface RefreshTokenOptions {
  /** A family unused for this long ends; default 14 days. Every refresh restarts it. */
  idleTtl?: number
  /** A family ends this long after the login however often it is used; default 90 days. */
  absoluteTtl?: number
}

/** How `authenticate` checks access tokens against the store. */
export interface RevocableAccessTokenOptions {
  /**
   * When the store cannot be reached, accept tokens unchecked (true) rather than answer 503
   * (false, the default: fail closed).
   */
  failOpen?: boolean
}

/**
 * Where the keys come from: exactly one of `secret`, `keys` and `jwksUrl`.
 *
 * `secret` may be typed `undefined` (as `process.env.JWT_SECRET` is): registration then fails with
 * a clear error rather than the compiler insisting on a non-null assertion.
 */
export type KeySourceOptions =
  | {
    /** The HMAC secret that signs access tokens (HS256): at least 32 bytes. The one-key shortcut. */
    secret: string | Buffer | undefined
    keys?: never
    jwksUrl?: never
  }
  | {
    /**
     * Signing and verification keys, for rotation and asymmetric algorithms. The first key signs (its
     * `kid` goes in every token's header); every key verifies the tokens that name its `kid`.
     */
    keys: readonly KeyOption[]
    secret?: never
    jwksUrl?: never
  }
  | {
    /**
     * Verify-only mode: the URL of the token issuer's JWKS (RFC 7517 §5). Needs no `findUser`, and
     * registers no token endpoint.
     */
    jwksUrl: string | URL
    secret?: never
    keys?: never
  }

/** Options of the plugin: a key source and the rest. */
export type FastifyJwtAuthOptions = KeySourceOptions & FastifyJwtAuthBaseOptions

/** Options of the plugin other than the key source. */
export interface FastifyJwtAuthBaseOptions {
  /** Caching, cooldown and timeout of the JWKS client (with `jwksUrl`). */
  jwksClient?: JwksClientOptions
  /**
   * Where the public keys are served as a JWKS; default `/.well-known/jwks.json`, `false` for
   * nowhere. Served only by an app that issues tokens and has asymmetric keys. The prefix applies.
   */
  jwksPath?: string | false
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
  /**
   * Where counters, refresh-token families and revocations live; default an in-memory store for
   * one process. `createRedisStore({ client })` shares them between instances.
   */
  store?: AuthStore
  /** Refresh tokens with rotation (RFC 6749 §6, RFC 9700 §4.14.2); off by default. */
  refreshTokens?: RefreshTokenOptions | boolean
  /**
   * Revocable access tokens: `authenticate` asks the store about every token (one store read
   * per request), so `/revoke` and `revokeUserTokens` take effect before tokens expire. Off by default.
   */
  revocableAccessTokens?: RevocableAccessTokenOptions | boolean
  /** Path of the revocation endpoint (RFC 7009), served when refresh tokens or revocable access tokens are on; default `/revoke`. */
  revocationPath?: string
  /** Receives every security event (also logged through the request logger). */
  onAuthEvent?: (event: AuthEvent) => void
  /**
   * Scope names and what each allows, shown in the OpenAPI document's "Authorize" dialog, e.g.
   * `{ profile: 'Read your profile', admin: 'Manage users' }`. Scopes that routes require through
   * `requireScopes` are listed there anyway.
   */
  scopes?: Readonly<Record<string, string>>
  /**
   * With `@fastify/swagger` registered before the plugin: document the token endpoint (and the
   * revocation endpoint when it is served), add the OAuth2 password-flow security scheme and mark
   * the routes that use `authenticate` or `requireScopes`. Default `true`; `false` leaves the
   * document alone.
   */
  openapi?: boolean
  /**
   * Extra claims for the access tokens of a user who logs in, e.g. `(user) => ({ tenant: ... })`;
   * they come back typed on `request.user.claims` once declared in `CustomClaims`. The registered
   * claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `client_id`, `scope`) cannot be set here.
   */
  claims?: (user: UserRecord, request: FastifyRequest) => CustomClaims | Promise<CustomClaims>
}

export interface ResolvedOptions {
  keySource: KeySource
  jwksPath: string | false
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
  scopes: Readonly<Record<string, string>>
  openapi: boolean
  claims: FastifyJwtAuthOptions['claims']
  refreshTokens: Required<RefreshTokenOptions> | false
  revocableAccessTokens: Required<RevocableAccessTokenOptions> | false
  revocationPath: string
}

const MINUTE = 60_000

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

function checkScopeDescriptions (scopes: unknown): Readonly<Record<string, string>> {
  if (scopes === undefined) return {}
  if (typeof scopes !== 'object' || scopes === null || Array.isArray(scopes)) fail('scopes', 'must be an object of scope name → description')
  for (const [name, description] of Object.entries(scopes)) {
    if (!SCOPE_TOKEN.test(name)) fail('scopes', `has "${name}", which is not a scope name (RFC 6749 §3.3)`)
    if (typeof description !== 'string') fail('scopes', `needs a string description for "${name}"`)
  }
  return Object.freeze({ ...scopes as Record<string, string> })
}

/** Checks the options and fills in defaults; never changes the caller's object. */
export function resolveOptions (options: FastifyJwtAuthOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options', 'must be an object')
  const { findUser, onPasswordRehash, onAuthEvent, store } = options
  if (findUser !== undefined && typeof findUser !== 'function') fail('findUser', 'must be a function')
  if (onPasswordRehash !== undefined && typeof onPasswordRehash !== 'function') fail('onPasswordRehash', 'must be a function')
  if (onAuthEvent !== undefined && typeof onAuthEvent !== 'function') fail('onAuthEvent', 'must be a function')
  if (store !== undefined && !STORE_METHODS.every((m) => typeof (store as unknown as Record<string, unknown> | null)?.[m] === 'function')) {
    fail('store', `must implement the AuthStore interface (${STORE_METHODS.join(', ')})`)
  }
  if (options.openapi !== undefined && typeof options.openapi !== 'boolean') fail('openapi', 'must be true or false')
  if (options.claims !== undefined && typeof options.claims !== 'function') fail('claims', 'must be a function')

  const tokenPath = options.tokenPath ?? '/token'
  if (typeof tokenPath !== 'string' || !tokenPath.startsWith('/')) fail('tokenPath', 'must be a path starting with "/"')
  const jwksPath = options.jwksPath ?? '/.well-known/jwks.json'
  if (jwksPath !== false && (typeof jwksPath !== 'string' || !jwksPath.startsWith('/'))) fail('jwksPath', 'must be a path starting with "/", or false')

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
    keySource: resolveKeySource(options, findUser !== undefined),
    jwksPath,
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
    onAuthEvent,
    scopes: checkScopeDescriptions(options.scopes),
    openapi: options.openapi ?? true,
    claims: options.claims,
    ...sessionOptions(options)
  }
}

const STORE_METHODS = ['reserve', 'release', 'reset', 'hit', 'createRefreshFamily', 'getRefreshFamily', 'rotateRefreshToken',
  'revokeRefreshFamily', 'revokeUser', 'revokeAccessToken', 'revocationState'] as const

const DAY = 24 * 3600

function sessionOptions (options: FastifyJwtAuthOptions): Pick<ResolvedOptions, 'refreshTokens' | 'revocableAccessTokens' | 'revocationPath'> {
  // `null` is a mistake, not "off": only `undefined` means that.
  const refresh = options.refreshTokens === undefined ? false : options.refreshTokens
  if (typeof refresh !== 'boolean' && (typeof refresh !== 'object' || refresh === null)) fail('refreshTokens', 'must be a boolean or an object')
  const lifetimes = refresh === true ? {} : refresh
  let refreshTokens: Required<RefreshTokenOptions> | false = false
  if (lifetimes !== false) {
    const absoluteTtl = positiveInt('refreshTokens.absoluteTtl', lifetimes.absoluteTtl, 90 * DAY, 10 * 365 * DAY)
    const idleTtl = positiveInt('refreshTokens.idleTtl', lifetimes.idleTtl, Math.min(14 * DAY, absoluteTtl), absoluteTtl)
    refreshTokens = { idleTtl, absoluteTtl }
  }

  const revocable = options.revocableAccessTokens === undefined ? false : options.revocableAccessTokens
  if (typeof revocable !== 'boolean' && (typeof revocable !== 'object' || revocable === null)) fail('revocableAccessTokens', 'must be a boolean or an object')
  const failOpen = revocable === true || revocable === false ? false : revocable.failOpen ?? false
  if (typeof failOpen !== 'boolean') fail('revocableAccessTokens.failOpen', 'must be a boolean')

  const revocationPath = options.revocationPath ?? '/revoke'
  if (typeof revocationPath !== 'string' || !revocationPath.startsWith('/')) fail('revocationPath', 'must be a path starting with "/"')
  if (revocationPath === (options.tokenPath ?? '/token')) fail('revocationPath', 'must differ from tokenPath')
  return { refreshTokens, revocableAccessTokens: revocable === false ? false : { failOpen }, revocationPath }
}
