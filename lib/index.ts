import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import './types.js'
import { resolveOptions, type FastifyJwtAuthOptions } from './options.js'
import { createTokenService } from './tokens.js'
import { createAuthenticator, type AuthUser } from './authenticate.js'
import { createEventEmitter } from './events.js'
import { createPasswordHasher } from './password.js'
import { createMemoryStore } from './stores/memory.js'
import { createLoginThrottle } from './throttle.js'
import { tokenRoute } from './token-route.js'
import { jwksRoute } from './jwks-route.js'
import { createApiDocs, tagScopes } from './openapi.js'
import { createRefreshTokens } from './refresh.js'
import { createRevocation } from './revocation.js'
import { revokeRoute } from './revoke-route.js'
import { cacheVerifications } from './verify-cache.js'

const plugin: FastifyPluginAsync<FastifyJwtAuthOptions> = async function fastifyJwtAuth (fastify, opts) {
  const options = resolveOptions(opts)
  const emit = createEventEmitter(options.onAuthEvent)
  // A client sends the same access token on every call: its signature is checked once. Not in
  // verify-only mode, where a key the issuer withdraws from its JWKS must stop verifying at once.
  const verifier = await createTokenService(fastify, options)
  const tokens = options.keySource.kind === 'remote' ? verifier : cacheVerifications(verifier, options.clockTolerance)
  // The store is made before `authenticate`: with revocable access tokens, a verifying-only
  // instance (no findUser) still asks it about every token.
  const store = options.store ?? createMemoryStore()
  if (options.store === undefined) fastify.addHook('onClose', async () => { await store.close?.() })
  const revocation = createRevocation(store, options, emit)
  const { authenticate, requireScopes } = createAuthenticator(tokens, options.realm, emit, revocation.check)

  // Tagged so that the OpenAPI document can tell which routes use them, and with which scopes.
  fastify.decorate('authenticate', tagScopes(authenticate, []))
  fastify.decorate('requireScopes', (...scopes: string[]) => tagScopes(requireScopes(...scopes), scopes))
  fastify.decorate('revokeUserTokens', revocation.revokeUser)
  if (!fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null as unknown as AuthUser)

  if (options.findUser === undefined) return

  const passwords = await createPasswordHasher(options.password, fastify.log)
  const throttle = createLoginThrottle(store, options)
  const docs = createApiDocs(fastify, options)
  // An encapsulated child: the form parser, the limiter and the error handler stay on the
  // token endpoint and never reach the host's other routes. fastify-plugin makes Fastify
  // ignore the host's `prefix` for this plugin, so it is handed on to the child by hand.
  const { prefix } = opts as { prefix?: string }
  const refresh = options.refreshTokens === false ? undefined : createRefreshTokens({ options, store, tokens, revocation, emit })
  const revoke = refresh === undefined && options.revocableAccessTokens === false
    ? undefined
    : revokeRoute({ options, tokens, refresh, revocation, emit, docs })
  await fastify.register(tokenRoute, { prefix, options, tokens, passwords, throttle, emit, docs, store, revocation, refresh, revokeRoute: revoke })
  // The public keys, for services that verify our tokens; an app with HMAC keys alone has none.
  if (options.jwksPath !== false && tokens.publicJwks.length > 0) {
    await fastify.register(jwksRoute, { prefix, path: options.jwksPath, publicJwks: tokens.publicJwks })
  }
}

/** The plugin: registers the `/token` route and the `authenticate` and `requireScopes` decorators. */
const fastifyJwtAuth = fp(plugin, { fastify: '5.x', name: 'fastify-jwt-auth' })

export default fastifyJwtAuth
export { fastifyJwtAuth }
export { hashPassword, verifyPassword, needsRehash, type HashParameters } from './password.js'
export { createMemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { requestLogSerializer, type RequestLogFields } from './log-serializers.js'
/** What a custom store throws when its backend cannot be reached: the plugin answers 503. */
export { StoreUnavailableError } from './errors.js'
export { createRedisStore, type RedisStoreOptions } from './stores/redis.js'
export type {
  AuthStore, ThrottleRule, ReserveResult, HitResult, RefreshFamily, RefreshLookup, RotateResult, RevocationState
} from './stores/types.js'
export type {
  FastifyJwtAuthOptions, FastifyJwtAuthBaseOptions, KeySourceOptions, UserRecord, ClientRecord, PasswordOptions, WindowLimit, BackoffLimit, LoginThrottleOptions,
  RefreshTokenOptions, RevocableAccessTokenOptions
} from './options.js'
export type { AuthUser, CustomClaims } from './authenticate.js'
export type { AccessTokenClaims } from './tokens.js'
export type { KeyOption, KeyMaterial, SigningAlgorithm, JwksClientOptions } from './keys.js'
export type { AuthEvent, AuthEventType } from './events.js'
export type { TokenResponse } from './token-route.js'
export type { OAuthErrorCode, BearerErrorCode } from './errors.js'
