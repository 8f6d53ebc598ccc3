import type { FastifyRequest } from 'fastify'
import type { JwksClientOptions, KeyOption } from './keys.js'
import type { AuthStore } from '../stores/types.js'
import type { AuthEvent } from '../logging/events.js'
import type { CustomClaims } from '../tokens/claims.js'

/*
 * The plugin's public option types. Their defaults are in `defaults.ts`; `resolve.ts` checks
 * them and fills the defaults in.
 */

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

/** The grant types a client may be allowed to use at the token endpoint. */
export type ClientGrantType = 'password' | 'refresh_token' | 'client_credentials'

/** A client allowed at the token endpoint (RFC 6749 §2). */
export interface ClientRecord {
  /** The `client_id`. */
  id: string
  /** An argon2 hash of the client secret; absent for a public client, which is known by its id alone. */
  secretHash?: string
  /**
   * The grant types this client may use; default `['password', 'refresh_token']`. Another one
   * is answered `unauthorized_client` (RFC 6749 §5.2). `client_credentials` needs a `secretHash`:
   * asked for by a client that sent no secret, it is answered `invalid_client` (§4.4.2).
   */
  grants?: readonly ClientGrantType[]
  /**
   * The scopes this client may get for itself with the client credentials grant; default none.
   * They do not limit what users logging in through this client are granted.
   */
  scopes?: readonly string[]
  /**
   * May call the introspection endpoint (RFC 7662) about any token this server issued; default
   * false. Needs a `secretHash`: introspection answers only clients that authenticate.
   */
  introspect?: boolean
}

/** argon2id parameters and the bounds on password hashing. */
export interface PasswordOptions {
  /** Memory in KiB; default 19456 (OWASP's minimum for argon2id). */
  memoryCost?: number
  /** Iterations; default 2. */
  timeCost?: number
  /** Lanes; default 1. */
  parallelism?: number
  /** Longest password accepted, in characters as JavaScript counts them (UTF-16 code units); longer ones are refused before any hashing. Default 1024. */
  maxLength?: number
  /**
   * Password verifications that run at once; default the libuv thread-pool size, but one less
   * than the CPUs the process can keep busy (its CPU affinity and cgroup quota), and one at least.
   */
  maxConcurrent?: number
  /**
   * Verifications that may wait for a turn; past that the token endpoint answers 503 with
   * `Retry-After` at once. A waiting login holds its request, not argon2's memory. Default 1000.
   */
  maxQueue?: number
  /**
   * Milliseconds a verification may wait for a turn; a login still waiting then is answered 503
   * with `Retry-After`, without being hashed. Default 2000.
   */
  maxWait?: number
  /**
   * Linux: the scheduling priority (nice, 0–19, as `os.setPriority` takes it) given to libuv's
   * thread pool, where passwords are hashed, so that the event loop goes first when both want a
   * core: at 10 a hash gets about a tenth of a core the event loop also wants, and all of one it
   * leaves idle. The pool is the process's, so its other work (fs, dns.lookup, zlib, crypto)
   * waits too. Default 0: the threads are left as they are.
   */
  threadPoolPriority?: number
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
  /** Failures are forgotten after this long without one, in milliseconds; default 12 hours. */
  timeWindow?: number
}

/**
 * Limits on failed logins; `false` turns one off. Counts are kept per normalised username
 * and per source: the client address, an IPv6 address by its /64.
 */
export interface LoginThrottleOptions {
  /**
   * Failures per (username, source); default 5 per 15 minutes. A success clears this count
   * only. The same limit applies to failed client authentications per (client_id, source).
   */
  perUsernameAndIp?: WindowLimit | false
  /**
   * Failures per username across all sources, with a growing wait. It never refuses a known
   * source (one the user logged in from within `knownSourceTtl`), and a success does not
   * clear it: it ages out by time alone.
   */
  perUsername?: BackoffLimit | false
  /** Seconds a source stays known after a successful login from it; default 30 days. */
  knownSourceTtl?: number
  /**
   * Count `Alice` and `alice` apart. Default `false`: usernames are compared after Unicode
   * NFKC and case folding, so spellings of one name share one count. Set it when your
   * usernames are case-sensitive. `findUser` always receives the username as sent (NFC).
   */
  caseSensitiveUsernames?: boolean
}

/** Refresh-token lifetimes, in seconds. */
export interface RefreshTokenOptions {
  /** A family unused for this long ends; default 14 days. Every refresh restarts it. */
  idleTtl?: number
  /** A family ends this long after the login however often it is used; default 90 days. */
  absoluteTtl?: number
  /**
   * For this long after a refresh, the refresh token it replaced may be presented again, by the
   * same client, as a retry of a refresh whose answer was lost (RFC 9700 §4.14.2): it gets a
   * fresh pair, and the pair handed out before stops working. Past it, that token is reuse and
   * ends the family. Counted from the refresh, not from the last retry. Default 10; 0 turns it off.
   */
  retryGrace?: number
}

/**
 * Browser sessions (docs/browser-apps.md): a page that sends `x-token-delivery: cookie` gets the
 * refresh token in an httpOnly cookie instead of the JSON body; other clients are unaffected.
 */
export interface BrowserSessionOptions {
  /**
   * The request header a page sends, with the value `cookie`, to have the refresh token in a
   * cookie; it is also the CSRF proof, so it may not be a header a cross-site form or a simple
   * request can carry. Default `x-token-delivery`.
   */
  header?: string
  /**
   * Origins besides the server's own whose pages may use the cookie, e.g.
   * `['https://app.example.com']` (with @fastify/cors allowing them and credentials). Default none.
   */
  origins?: readonly string[]
  /** The refresh cookie's name; it must start with `__Host-` and cannot be `__Host-device` (the device cookie's). Default `__Host-refresh-token`. */
  cookieName?: string
  /**
   * After a browser login, a signed device cookie naming the user, which makes the browser a known
   * source for the login throttle (OWASP device cookies). Default `true`; needs
   * `loginThrottle.perUsername`.
   */
  deviceCookie?: boolean
  /** The HMAC key that signs device cookies, at least 32 bytes. Default 32 random bytes at start-up. */
  deviceSecret?: string | Buffer
  /** Failed logins with one device cookie before it stops counting as known; default 5 per 15 minutes. */
  deviceLockout?: WindowLimit
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
export type FastifyTokenAuthOptions = KeySourceOptions & FastifyTokenAuthBaseOptions

/** Options of the plugin other than the key source. */
export interface FastifyTokenAuthBaseOptions {
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
  /** The `iss` claim, signed and required on verify. Required in verify-only mode (RFC 9068 §4). */
  issuer?: string
  /**
   * The `aud` claim, signed and required on verify (any one of a list). Required in verify-only
   * mode (`jwksUrl`, or public `keys` without `findUser`): RFC 9068 §4.
   */
  audience?: string | string[]
  /**
   * Verify-only mode: accept tokens whatever their `aud`, instead of naming this API's `audience`.
   * A token the same issuer minted for any other API then opens this one (RFC 9068 §4 says a
   * resource server MUST check `aud`): only for an issuer that has one audience.
   */
  acceptAnyAudience?: boolean
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds; default 5, at most 300. */
  clockTolerance?: number
  /** The realm in `WWW-Authenticate` challenges; default `api`. */
  realm?: string
  /** The `client_id` claim when no client authenticated; default `public`. */
  defaultClientId?: string
  /** Clients allowed at the token endpoint. When set, every token request must authenticate as one (unless `publicClient`). */
  clients?: readonly ClientRecord[]
  /**
   * With `clients`: a token or revocation request that carries no client credentials, or only
   * `client_id` = `defaultClientId`, is the default public client, which may use the password and
   * refresh grants, as without `clients`. Default false: every request must authenticate as a listed client.
   */
  publicClient?: boolean
  /**
   * Path of the token introspection endpoint (RFC 7662), served when a client has `introspect: true`;
   * default `/introspect`. The registration prefix applies.
   */
  introspectionPath?: string
  /** Introspection requests per client; default 600 a minute; `false` for no limit. */
  introspectionRateLimit?: WindowLimit | false
  /**
   * Serve the authorization server metadata (RFC 8414) at `/.well-known/oauth-authorization-server`
   * (followed by the issuer's path, RFC 8414 §3.1). Default true; served only when `issuer` is an
   * http(s) URL, from which every URL in it is built.
   */
  metadata?: boolean
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
   * Browser sessions: the refresh token in an httpOnly cookie for pages that ask for it, with a
   * CSRF check and device cookies (docs/browser-apps.md). Needs `refreshTokens`. Off by default.
   */
  browserSessions?: BrowserSessionOptions | boolean
  /**
   * Revocable access tokens: `authenticate` asks the store about every token (one store read
   * per request), so `/revoke` and `revokeUserTokens` take effect before tokens expire. Off by default.
   */
  revocableAccessTokens?: RevocableAccessTokenOptions | boolean
  /** Path of the revocation endpoint (RFC 7009), served when refresh tokens or revocable access tokens are on; default `/revoke`. */
  revocationPath?: string
  /** Receives every security event (also logged through the request logger); what it returns is not awaited, and a rejection is logged. */
  onAuthEvent?: (event: AuthEvent) => unknown
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
