import { resolveKeySource, type KeySource } from './keys.js'
import { DEFAULTS, defaultHashingConcurrency } from './defaults.js'
import { fail, objectOrFalse, optionalString, path, wholeNumber } from './checks.js'
import { SCOPE_TOKEN } from '../scope.js'
import { checkClientPermissions } from './clients.js'
import { checkBrowserSessions, type ResolvedBrowserSessions } from './browser-sessions.js'
import type { AuthStore } from '../stores/types.js'
import type {
  BackoffLimit, ClientRecord, FastifyTokenAuthOptions, PasswordOptions, RefreshTokenOptions, RevocableAccessTokenOptions, WindowLimit
} from './types.js'

/** The options checked, with every default filled in: what the parts of the plugin are built from. */
export interface ResolvedOptions {
  keySource: KeySource
  jwksPath: string | false
  findUser: FastifyTokenAuthOptions['findUser']
  tokenPath: string
  accessTokenTtl: number
  issuer: string | undefined
  audience: string | string[] | undefined
  /** Verify-only mode: tokens for any audience are accepted (checked: only there, without `audience`). */
  acceptAnyAudience: boolean
  clockTolerance: number
  realm: string
  defaultClientId: string
  clients: ReadonlyMap<string, ClientRecord> | undefined
  publicClient: boolean
  introspectionPath: string
  introspectionRateLimit: Required<WindowLimit> | false
  /** The issuer as a URL when the RFC 8414 metadata is served; `undefined` when it is not. */
  metadataIssuer: URL | undefined
  password: Required<PasswordOptions>
  onPasswordRehash: FastifyTokenAuthOptions['onPasswordRehash']
  rateLimit: Required<WindowLimit> | false
  perUsernameAndIp: Required<WindowLimit> | false
  perUsername: Required<BackoffLimit> | false
  /** Milliseconds. */
  knownSourceTtl: number
  caseSensitiveUsernames: boolean
  bodyLimit: number
  store: AuthStore | undefined
  onAuthEvent: FastifyTokenAuthOptions['onAuthEvent']
  scopes: Readonly<Record<string, string>>
  openapi: boolean
  claims: FastifyTokenAuthOptions['claims']
  refreshTokens: Required<RefreshTokenOptions> | false
  revocableAccessTokens: Required<RevocableAccessTokenOptions> | false
  revocationPath: string
  browserSessions: ResolvedBrowserSessions | false
}

function windowLimit (name: string, value: WindowLimit | false | undefined, defaults: Required<WindowLimit>): Required<WindowLimit> | false {
  const limit = objectOrFalse(name, value)
  if (limit === false) return false
  return {
    max: wholeNumber(`${name}.max`, limit?.max, defaults.max),
    timeWindow: wholeNumber(`${name}.timeWindow`, limit?.timeWindow, defaults.timeWindow)
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
    checkClientPermissions(client)
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

function checkFunction (name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') fail(name, 'must be a function')
}

function checkPassword (value: PasswordOptions | undefined): Required<PasswordOptions> {
  const password = value === undefined ? {} : value
  if (typeof password !== 'object' || password === null) fail('password', 'must be an object')
  const defaults = DEFAULTS.password
  const memoryCost = wholeNumber('password.memoryCost', password.memoryCost, defaults.memoryCost, 4 * 1024 * 1024)
  if (memoryCost < 8) fail('password.memoryCost', 'must be at least 8 KiB')
  const maxConcurrent = wholeNumber('password.maxConcurrent', password.maxConcurrent, defaultHashingConcurrency(), 1024)
  return {
    memoryCost,
    timeCost: wholeNumber('password.timeCost', password.timeCost, defaults.timeCost, 100),
    parallelism: wholeNumber('password.parallelism', password.parallelism, defaults.parallelism, 64),
    maxLength: wholeNumber('password.maxLength', password.maxLength, defaults.maxLength, 65536),
    maxConcurrent,
    // 0 is meaningful for both: no waiting at all, a full pool answers 503 at once.
    maxQueue: wholeNumber('password.maxQueue', password.maxQueue, defaults.maxQueue, Number.MAX_SAFE_INTEGER, 0),
    // A login that waits longer than a client does is work for nobody.
    maxWait: wholeNumber('password.maxWait', password.maxWait, defaults.maxWait, 60_000, 0),
    // 19 is the lowest priority Linux has; a negative one would need privileges, and ask for more than the event loop's.
    threadPoolPriority: wholeNumber('password.threadPoolPriority', password.threadPoolPriority, defaults.threadPoolPriority, 19, 0)
  }
}

type ThrottleOptions = Pick<ResolvedOptions, 'perUsernameAndIp' | 'perUsername' | 'knownSourceTtl' | 'caseSensitiveUsernames'>

function checkLoginThrottle (value: FastifyTokenAuthOptions['loginThrottle']): ThrottleOptions {
  const throttle = objectOrFalse('loginThrottle', value) ?? {}
  const defaults = DEFAULTS.loginThrottle
  const off = { knownSourceTtl: defaults.knownSourceTtl * 1000, caseSensitiveUsernames: defaults.caseSensitiveUsernames }
  if (throttle === false) return { perUsernameAndIp: false, perUsername: false, ...off }
  const perUsername = objectOrFalse('loginThrottle.perUsername', throttle.perUsername)
  const caseSensitiveUsernames = throttle.caseSensitiveUsernames ?? defaults.caseSensitiveUsernames
  if (typeof caseSensitiveUsernames !== 'boolean') fail('loginThrottle.caseSensitiveUsernames', 'must be true or false')
  return {
    perUsernameAndIp: windowLimit('loginThrottle.perUsernameAndIp', throttle.perUsernameAndIp, defaults.perUsernameAndIp),
    perUsername: perUsername === false
      ? false
      : {
          freeAttempts: wholeNumber('loginThrottle.perUsername.freeAttempts', perUsername?.freeAttempts, defaults.perUsername.freeAttempts),
          maxDelay: wholeNumber('loginThrottle.perUsername.maxDelay', perUsername?.maxDelay, defaults.perUsername.maxDelay),
          timeWindow: wholeNumber('loginThrottle.perUsername.timeWindow', perUsername?.timeWindow, defaults.perUsername.timeWindow)
        },
    knownSourceTtl: 1000 * wholeNumber('loginThrottle.knownSourceTtl', throttle.knownSourceTtl, defaults.knownSourceTtl, 366 * 24 * 3600),
    caseSensitiveUsernames
  }
}

function checkAudience (audience: unknown): string | string[] | undefined {
  if (audience !== undefined && !(typeof audience === 'string' && audience.length > 0) &&
    !(Array.isArray(audience) && audience.length > 0 && audience.every((a) => typeof a === 'string' && a.length > 0))) {
    fail('audience', 'must be a non-empty string or a non-empty array of them')
  }
  return audience as string | string[] | undefined
}

/**
 * Verify-only mode: no `findUser`, and keys from a JWKS or at least one public key, so the tokens
 * come from another party, whose keys sign its tokens for every API it serves. RFC 9068 §4: the
 * resource server MUST check that `iss` is its authorization server and that `aud` names itself.
 * Only the audience check can be waived, by name: the issuer is always known to an app that
 * trusts its keys, and an issuer that publishes one key set for many tenants tells them apart by
 * `iss` alone.
 */
function checkVerifyOnly (keySource: KeySource, issues: boolean, issuer: string | undefined, audience: unknown, acceptAnyAudience: unknown): void {
  if (typeof acceptAnyAudience !== 'boolean') fail('acceptAnyAudience', 'must be true or false')
  // A public key is another party's: beside a shared secret too, its tokens must be checked for
  // `iss` and `aud` (an issuer serves many APIs with one key set).
  const verifyOnly = !issues && (keySource.kind === 'remote' || keySource.keys.some((key) => key.signingKey === undefined))
  if (!verifyOnly) {
    if (acceptAnyAudience === true) fail('acceptAnyAudience', 'applies only in verify-only mode (`jwksUrl`, or public `keys` without `findUser`)')
    return
  }
  if (issuer === undefined) {
    fail('issuer', 'is required in verify-only mode: a resource server must check that `iss` is the issuer it trusts (RFC 9068 §4)')
  }
  if (acceptAnyAudience === true) {
    if (audience !== undefined) fail('acceptAnyAudience', 'contradicts `audience`: give one or the other')
  } else if (audience === undefined) {
    fail('audience', 'is required in verify-only mode: a resource server must check that `aud` names it (RFC 9068 §4); ' +
      '`acceptAnyAudience: true` accepts tokens minted for any API instead')
  }
}

function checkRealm (realm: unknown): string {
  // The realm goes into a quoted-string (RFC 9110 §11.5); keep it plain.
  if (typeof realm !== 'string' || !/^[\x20-\x7e]+$/.test(realm) || /["\\]/.test(realm)) {
    fail('realm', 'must be printable ASCII without quotes or backslashes')
  }
  return realm
}

const STORE_METHODS = ['reserve', 'release', 'reset', 'hit', 'rememberSource', 'isKnownSource', 'createRefreshFamily', 'getRefreshFamily', 'rotateRefreshToken',
  'revokeRefreshFamily', 'revocationEpoch', 'revokeUser', 'revokeAccessToken', 'revocationState'] as const

/** Checks the options and fills in defaults; never changes the caller's object. */
export function resolveOptions (options: FastifyTokenAuthOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options', 'must be an object')
  const { findUser, onPasswordRehash, onAuthEvent, store } = options
  checkFunction('findUser', findUser)
  checkFunction('onPasswordRehash', onPasswordRehash)
  checkFunction('onAuthEvent', onAuthEvent)
  if (store !== undefined && !STORE_METHODS.every((m) => typeof (store as unknown as Record<string, unknown> | null)?.[m] === 'function')) {
    fail('store', `must implement the AuthStore interface (${STORE_METHODS.join(', ')})`)
  }
  if (options.openapi !== undefined && typeof options.openapi !== 'boolean') fail('openapi', 'must be true or false')
  checkFunction('claims', options.claims)

  const tokenPath = path('tokenPath', options.tokenPath ?? DEFAULTS.tokenPath)
  const jwksPath = options.jwksPath ?? DEFAULTS.jwksPath
  if (jwksPath !== false && (typeof jwksPath !== 'string' || !jwksPath.startsWith('/'))) fail('jwksPath', 'must be a path starting with "/", or false')

  const clockTolerance = options.clockTolerance ?? DEFAULTS.clockTolerance
  if (typeof clockTolerance !== 'number' || !Number.isFinite(clockTolerance) || clockTolerance < 0 || clockTolerance > 300) {
    fail('clockTolerance', 'must be a number of seconds from 0 to 300')
  }

  const keySource = resolveKeySource(options, findUser !== undefined)
  const issuer = optionalString('issuer', options.issuer)
  const audience = checkAudience(options.audience)
  const acceptAnyAudience = options.acceptAnyAudience ?? DEFAULTS.acceptAnyAudience
  checkVerifyOnly(keySource, findUser !== undefined, issuer, audience, acceptAnyAudience)
  const throttle = checkLoginThrottle(options.loginThrottle)
  const sessions = sessionOptions(options, tokenPath)

  return {
    keySource,
    jwksPath,
    findUser,
    tokenPath,
    accessTokenTtl: wholeNumber('accessTokenTtl', options.accessTokenTtl, DEFAULTS.accessTokenTtl, 365 * 24 * 3600),
    issuer,
    audience,
    acceptAnyAudience,
    clockTolerance,
    realm: checkRealm(options.realm ?? DEFAULTS.realm),
    defaultClientId: optionalString('defaultClientId', options.defaultClientId) ?? DEFAULTS.defaultClientId,
    clients: checkClients(options.clients),
    ...clientOptions(options, tokenPath),
    password: checkPassword(options.password),
    onPasswordRehash,
    rateLimit: windowLimit('rateLimit', options.rateLimit, DEFAULTS.rateLimit),
    ...throttle,
    bodyLimit: wholeNumber('bodyLimit', options.bodyLimit, DEFAULTS.bodyLimit, 1024 * 1024),
    store,
    onAuthEvent,
    scopes: checkScopeDescriptions(options.scopes),
    openapi: options.openapi ?? DEFAULTS.openapi,
    claims: options.claims,
    ...sessions,
    browserSessions: checkBrowserSessions(options.browserSessions, sessions.refreshTokens !== false, findUser !== undefined, throttle.perUsername !== false)
  }
}

function sessionOptions (options: FastifyTokenAuthOptions, tokenPath: string): Pick<ResolvedOptions, 'refreshTokens' | 'revocableAccessTokens' | 'revocationPath'> {
  // `null` is a mistake, not "off": only `undefined` means that.
  const refresh = options.refreshTokens === undefined ? DEFAULTS.refreshTokens : options.refreshTokens
  if (typeof refresh !== 'boolean' && (typeof refresh !== 'object' || refresh === null)) fail('refreshTokens', 'must be a boolean or an object')
  const lifetimes = refresh === true ? {} : refresh
  let refreshTokens: Required<RefreshTokenOptions> | false = false
  if (lifetimes !== false) {
    const defaults = DEFAULTS.refreshTokenLifetimes
    const absoluteTtl = wholeNumber('refreshTokens.absoluteTtl', lifetimes.absoluteTtl, defaults.absoluteTtl, 10 * 365 * 24 * 3600)
    const idleTtl = wholeNumber('refreshTokens.idleTtl', lifetimes.idleTtl, Math.min(defaults.idleTtl, absoluteTtl), absoluteTtl)
    // Short by design: RFC 9700 §4.14.2 allows a grace for retries, and it is also how long a
    // thief holding the replaced token could use it in the client's place.
    const retryGrace = wholeNumber('refreshTokens.retryGrace', lifetimes.retryGrace, defaults.retryGrace, 300, 0)
    refreshTokens = { idleTtl, absoluteTtl, retryGrace }
  }

  const revocable = options.revocableAccessTokens === undefined ? DEFAULTS.revocableAccessTokens : options.revocableAccessTokens
  if (typeof revocable !== 'boolean' && (typeof revocable !== 'object' || revocable === null)) fail('revocableAccessTokens', 'must be a boolean or an object')
  const failOpen = typeof revocable === 'boolean' ? DEFAULTS.revocableAccessTokenOptions.failOpen : revocable.failOpen ?? DEFAULTS.revocableAccessTokenOptions.failOpen
  if (typeof failOpen !== 'boolean') fail('revocableAccessTokens.failOpen', 'must be a boolean')

  const revocationPath = path('revocationPath', options.revocationPath ?? DEFAULTS.revocationPath)
  if (revocationPath === tokenPath) fail('revocationPath', 'must differ from tokenPath')
  return { refreshTokens, revocableAccessTokens: revocable === false ? false : { failOpen }, revocationPath }
}

/** The options of the client-facing standards: a public client beside registered ones, introspection, metadata. */
function clientOptions (options: FastifyTokenAuthOptions, tokenPath: string): Pick<ResolvedOptions, 'publicClient' | 'introspectionPath' | 'introspectionRateLimit' | 'metadataIssuer'> {
  const publicClient = options.publicClient ?? DEFAULTS.publicClient
  if (typeof publicClient !== 'boolean') fail('publicClient', 'must be true or false')
  const defaultClientId = options.defaultClientId ?? DEFAULTS.defaultClientId
  // A request without credentials would be that client without its secret.
  if (publicClient && options.clients?.some((client) => client?.id === defaultClientId) === true) {
    fail('publicClient', `cannot be on while \`clients\` lists the default client "${defaultClientId}"`)
  }
  const introspectionPath = path('introspectionPath', options.introspectionPath ?? DEFAULTS.introspectionPath)
  if (introspectionPath === tokenPath || introspectionPath === (options.revocationPath ?? DEFAULTS.revocationPath)) {
    fail('introspectionPath', 'must differ from tokenPath and revocationPath')
  }
  const metadata = options.metadata ?? DEFAULTS.metadata
  if (typeof metadata !== 'boolean') fail('metadata', 'must be true or false')
  return {
    publicClient,
    introspectionPath,
    introspectionRateLimit: windowLimit('introspectionRateLimit', options.introspectionRateLimit, DEFAULTS.introspectionRateLimit),
    metadataIssuer: metadata ? issuerUrl(options.issuer, options.metadata === true) : undefined
  }
}

/**
 * The issuer as the URL the metadata is built from (RFC 8414 §2: a URL with no query or
 * fragment). An issuer that is not one only turns the metadata off, unless it was asked for.
 */
function issuerUrl (issuer: unknown, required: boolean): URL | undefined {
  let url: URL | undefined
  try {
    url = typeof issuer === 'string' ? new URL(issuer) : undefined
  } catch {}
  if (url !== undefined && (url.protocol === 'https:' || url.protocol === 'http:') && !/[?#]/.test(issuer as string)) return url
  if (required) fail('metadata', 'needs `issuer` to be an http(s) URL without query or fragment (RFC 8414 §2)')
  return undefined
}
