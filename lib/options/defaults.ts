/** Freezes a plain object of defaults and every object in it, so no caller can change one by accident. */
function deepFreeze<T extends object> (value: T): Readonly<T> {
  for (const inner of Object.values(value)) if (typeof inner === 'object' && inner !== null) deepFreeze(inner)
  return Object.freeze(value)
}

/**
 * Every plain default of the plugin's options, in one place. The README's Options table is
 * checked against this object by `test/readme-options.test.ts`, so the two cannot drift. Times
 * are milliseconds unless the name ends in `Ttl` or is `clockTolerance` (seconds, as
 * `expires_in` is, RFC 6749 §5.1).
 */
export const DEFAULTS = deepFreeze({
  /** Paths of the endpoints; the registration `prefix` applies to each. */
  tokenPath: '/token',
  revocationPath: '/revoke',
  jwksPath: '/.well-known/jwks.json',
  /** Access tokens: lifetime and allowed clock skew, in seconds; the `WWW-Authenticate` realm. */
  accessTokenTtl: 900,
  clockTolerance: 5,
  realm: 'api',
  /** The token endpoints: the `client_id` claim without configured clients, and the largest body in bytes. */
  defaultClientId: 'public',
  bodyLimit: 4096,
  /** Document the endpoints and the protected routes when `@fastify/swagger` is registered first. */
  openapi: true,
  /** argon2id at OWASP's minimum (m = 19 MiB, t = 2, p = 1); passwords longer than `maxLength` characters are refused before hashing. */
  password: { memoryCost: 19456, timeCost: 2, parallelism: 1, maxLength: 1024 },
  /** Per client address on the token endpoints, counted before the body is read. */
  rateLimit: { max: 30, timeWindow: 60000 },
  /** Failed logins per (username, address) in a fixed window, and per username with a capped backoff. */
  loginThrottle: {
    perUsernameAndIp: { max: 5, timeWindow: 900000 },
    perUsername: { freeAttempts: 10, maxDelay: 900000, timeWindow: 900000 }
  },
  /** Refresh tokens are off; when on, their lifetimes in seconds (14 days idle, 90 days in all). */
  refreshTokens: false,
  refreshTokenLifetimes: { idleTtl: 1209600, absoluteTtl: 7776000 },
  /** Revocable access tokens are off; when on, they fail closed while the store is away. */
  revocableAccessTokens: false,
  revocableAccessTokenOptions: { failOpen: false },
  /** The JWKS client of verify-only mode (`jwksUrl`). */
  jwksClient: { cacheMaxAge: 600000, cooldown: 30000, timeout: 5000 }
})
