import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import './types.js'
import { resolveOptions, type ResolvedOptions } from './options/resolve.js'
import type { FastifyJwtAuthOptions } from './options/types.js'
import { createEventEmitter, type EmitEvent } from './logging/events.js'
import { createAuthenticator } from './authenticate.js'
import { createTokenService, type TokenService } from './tokens/token-service.js'
import { cacheVerifications } from './tokens/verify-cache.js'
import { createRevocation, type Revocation } from './tokens/revocation.js'
import { createRefreshTokens } from './tokens/refresh-tokens.js'
import { createPasswordHasher } from './password/hasher.js'
import { createLoginThrottle } from './throttle/login-throttle.js'
import { createMemoryStore } from './stores/memory.js'
import type { AuthStore } from './stores/types.js'
import { createTokenIssuer } from './grants/issue.js'
import { createPasswordGrant } from './grants/password.js'
import { createRefreshGrant } from './grants/refresh.js'
import type { GrantHandler } from './grants/grant.js'
import { createClientAuthenticator } from './endpoints/client-auth.js'
import { setUpEndpointScope } from './endpoints/endpoint-scope.js'
import { tokenEndpoint } from './endpoints/token.js'
import { revokeEndpoint } from './endpoints/revoke.js'
import { jwksEndpoint } from './endpoints/jwks.js'
import { createApiDocs, tagScopes } from './openapi.js'
import type { AuthUser } from './tokens/claims.js'

/** The parts every instance of the plugin has, whether it issues tokens or only verifies them. */
interface Parts {
  options: ResolvedOptions
  emit: EmitEvent
  tokens: TokenService
  store: AuthStore
  revocation: Revocation
}

const plugin: FastifyPluginAsync<FastifyJwtAuthOptions> = async function fastifyJwtAuth (fastify, opts) {
  const options = resolveOptions(opts)
  const emit = createEventEmitter(options.onAuthEvent)
  const tokens = await createTokenService(fastify, options)
  // The store is made before `authenticate`: with revocable access tokens, a verifying-only
  // instance (no findUser) still asks it about every token.
  const store = options.store ?? createMemoryStore()
  if (options.store === undefined) fastify.addHook('onClose', async () => { await store.close?.() })
  const revocation = createRevocation({ ...options, store, emit })
  const { authenticate, requireScopes } = createAuthenticator({
    // A client sends the same access token on every call: its signature is checked once. Not in
    // verify-only mode, where a key the issuer withdraws from its JWKS must stop verifying.
    tokens: options.keySource.kind === 'remote' ? tokens : cacheVerifications(tokens, options.clockTolerance),
    realm: options.realm,
    emit,
    check: revocation.check
  })

  // Tagged so that the OpenAPI document can tell which routes use them, and with which scopes.
  fastify.decorate('authenticate', tagScopes(authenticate, []))
  fastify.decorate('requireScopes', (...scopes: string[]) => tagScopes(requireScopes(...scopes), scopes))
  fastify.decorate('revokeUserTokens', revocation.revokeUser)
  if (!fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null as unknown as AuthUser)

  // Without findUser the plugin only verifies tokens: no endpoints.
  if (options.findUser === undefined) return
  // fastify-plugin makes Fastify ignore the host's `prefix` for this plugin, so the endpoints'
  // scope is handed it by hand.
  const { prefix } = opts as { prefix?: string }
  await registerEndpoints(fastify, prefix, { options, emit, tokens, store, revocation })
}

/** The token endpoint, and the revocation and JWKS endpoints when they are on. */
async function registerEndpoints (fastify: FastifyInstance, prefix: string | undefined, parts: Parts): Promise<void> {
  const { options, emit, tokens, store, revocation } = parts
  const findUser = options.findUser as NonNullable<ResolvedOptions['findUser']>
  const passwords = await createPasswordHasher(options.password, fastify.log)
  const docs = createApiDocs(fastify, options)
  const refreshTokens = options.refreshTokens === false
    ? undefined
    : createRefreshTokens({ store, ...options.refreshTokens, familyDenyMs: revocation.familyDenyMs })
  const issue = createTokenIssuer({ tokens, refreshTokens, claims: options.claims })
  const revocationEpoch = revocation.epoch

  const grants = new Map<string, GrantHandler>([['password', createPasswordGrant({
    findUser,
    onPasswordRehash: options.onPasswordRehash,
    passwords,
    maxPasswordLength: options.password.maxLength,
    throttle: createLoginThrottle({ ...options, store }),
    revocationEpoch,
    issue,
    emit
  })]])
  if (refreshTokens !== undefined) grants.set('refresh_token', createRefreshGrant({ refreshTokens, findUser, revocationEpoch, issue, emit }))
  const authenticateClient = createClientAuthenticator({ ...options, passwords, emit })
  const { bodyLimit } = options

  // An encapsulated child: the form parser, the limiter and the error handler stay on these
  // endpoints and never reach the host's other routes.
  await fastify.register(async function oauthEndpoints (scope) {
    await setUpEndpointScope(scope, { ...options, store, emit })
    tokenEndpoint(scope, { path: options.tokenPath, bodyLimit, authenticateClient, grants, docs: docs.tokenRoute })
    if (refreshTokens !== undefined || options.revocableAccessTokens !== false) {
      revokeEndpoint(scope, {
        path: options.revocationPath,
        bodyLimit,
        authenticateClient,
        tokens,
        refreshTokens,
        revocation,
        revocableAccessTokens: options.revocableAccessTokens !== false,
        emit,
        docs: docs.revokeRoute
      })
    }
  }, { prefix })
  // The public keys, for services that verify our tokens; an app with HMAC keys alone has none.
  if (options.jwksPath !== false && tokens.publicJwks.length > 0) {
    await fastify.register(async (scope) => { jwksEndpoint(scope, { path: options.jwksPath as string, publicJwks: tokens.publicJwks }) }, { prefix })
  }
}

/** The plugin: registers the `/token` route and the `authenticate` and `requireScopes` decorators. */
const fastifyJwtAuth = fp(plugin, { fastify: '5.x', name: 'fastify-jwt-auth' })

export default fastifyJwtAuth
export { fastifyJwtAuth }
export { hashPassword, verifyPassword, needsRehash, type HashParameters } from './password/hasher.js'
export { createMemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { requestLogSerializer, type RequestLogFields } from './logging/request-log.js'
/** What a custom store throws when its backend cannot be reached: the plugin answers 503. */
export { StoreUnavailableError } from './errors.js'
export { createRedisStore, type RedisStoreOptions } from './stores/redis.js'
export type {
  AuthStore, ThrottleRule, ReserveResult, HitResult, RefreshFamily, RefreshLookup, RotateResult, RotateRules, RevocationState
} from './stores/types.js'
export type {
  FastifyJwtAuthOptions, FastifyJwtAuthBaseOptions, KeySourceOptions, UserRecord, ClientRecord, PasswordOptions, WindowLimit, BackoffLimit, LoginThrottleOptions,
  RefreshTokenOptions, RevocableAccessTokenOptions
} from './options/types.js'
export type { AuthUser, CustomClaims, AccessTokenClaims } from './tokens/claims.js'
export type { KeyOption, KeyMaterial, SigningAlgorithm, JwksClientOptions } from './options/keys.js'
export type { AuthEvent, AuthEventType } from './logging/events.js'
export type { TokenResponse } from './grants/grant.js'
export type { OAuthErrorCode, BearerErrorCode } from './errors.js'
