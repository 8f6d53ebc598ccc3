import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import './types.js'
import { resolveOptions, type ResolvedOptions } from './options/resolve.js'
import type { FastifyTokenAuthOptions } from './options/types.js'
import { createEventEmitter, type EmitEvent } from './logging/events.js'
import { createAuthenticator } from './authenticate.js'
import { createTokenService, type TokenService } from './tokens/token-service.js'
import { cacheVerifications } from './tokens/verify-cache.js'
import { createRevocation, type Revocation } from './tokens/revocation.js'
import { createRefreshTokens, type RefreshTokens } from './tokens/refresh-tokens.js'
import { createPasswordHasher, passwordHashing } from './password/hasher.js'
import { createClientThrottle, createLoginThrottle } from './throttle/login-throttle.js'
import { createMemoryStore } from './stores/memory.js'
import type { AuthStore } from './stores/types.js'
import { createTokenIssuer } from './grants/issue.js'
import { createPasswordGrant } from './grants/password.js'
import { createRefreshGrant } from './grants/refresh.js'
import { createClientCredentialsGrant } from './grants/client-credentials.js'
import { restrictGrantsToClients } from './grants/client-grants.js'
import { clientScopes, servesClientCredentials, servesIntrospection } from './options/clients.js'
import { createIntrospector } from './tokens/introspect.js'
import { introspectEndpoint } from './endpoints/introspect.js'
import { metadataEndpoint, type EndpointPaths } from './endpoints/metadata.js'
import type { GrantHandler } from './grants/grant.js'
import { createClientAuthenticator } from './endpoints/client-auth.js'
import { setUpEndpointScope } from './endpoints/endpoint-scope.js'
import { tokenEndpoint } from './endpoints/token.js'
import { revokeEndpoint } from './endpoints/revoke.js'
import { jwksEndpoint } from './endpoints/jwks.js'
import { createBrowserSessions } from './browser/browser-sessions.js'
import { createDeviceCookies } from './browser/device-cookies.js'
import { setUpBrowserSessions } from './browser/set-up.js'
import { createApiDocs, tagScopes } from './openapi.js'
import type { AuthUser } from './tokens/claims.js'
import { AlreadyRegisteredError } from './errors.js'

/** The parts every instance of the plugin has, whether it issues tokens or only verifies them. */
interface Parts {
  options: ResolvedOptions
  emit: EmitEvent
  tokens: TokenService
  store: AuthStore
  revocation: Revocation
  offeredScopes: ReadonlySet<string> | undefined
}

/**
 * Marks a scope the plugin is registered in. A registry-wide symbol, so that the ESM and the
 * CommonJS builds, should a host load both, see each other's mark.
 */
const kRegistered = Symbol.for('fastify-token-auth.registered')

const plugin: FastifyPluginAsync<FastifyTokenAuthOptions> = async function fastifyTokenAuth (fastify, opts) {
  // A second registration would otherwise fail on its first decorator with Fastify's
  // FST_ERR_DEC_ALREADY_PRESENT, which names neither the plugin nor the way out.
  if (fastify.hasDecorator(kRegistered)) throw new AlreadyRegisteredError()
  fastify.decorate(kRegistered, true)
  const options = resolveOptions(opts)
  const emit = createEventEmitter(options.onAuthEvent)
  const tokens = await createTokenService(fastify, options)
  // The store is made before `authenticate`: with revocable access tokens, a verifying-only
  // instance (no findUser) still asks it about every token.
  const store = options.store ?? createMemoryStore()
  if (options.store === undefined) fastify.addHook('onClose', async () => { await store.close?.() })
  // e.g. a Redis that may evict keys, and with them blocks and revocations.
  for (const warning of await store.checkSetup?.() ?? []) fastify.log.warn(warning)
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
  // The scopes the server offers, when the host lists them: those of the `scopes` option, and
  // those its routes require (routes are added after the plugin, but before any request).
  const offeredScopes = Object.keys(options.scopes).length === 0 ? undefined : new Set(Object.keys(options.scopes))
  fastify.decorate('requireScopes', (...scopes: string[]) => {
    for (const scope of scopes) offeredScopes?.add(scope)
    return tagScopes(requireScopes(...scopes), scopes)
  })
  fastify.decorate('revokeUserTokens', revocation.revokeUser)
  if (!fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null as unknown as AuthUser)

  // Without findUser the plugin only verifies tokens: no endpoints.
  if (options.findUser === undefined) return
  // fastify-plugin makes Fastify ignore the host's `prefix` for this plugin, so the endpoints'
  // scope is handed it by hand.
  const { prefix } = opts as { prefix?: string }
  await registerEndpoints(fastify, prefix, { options, emit, tokens, store, revocation, offeredScopes })
}

/** The token endpoint, and the revocation, introspection, JWKS and metadata endpoints when they are on. */
async function registerEndpoints (fastify: FastifyInstance, prefix: string | undefined, parts: Parts): Promise<void> {
  const { options, emit, tokens, store, revocation, offeredScopes } = parts
  const { clients } = options
  const findUser = options.findUser as NonNullable<ResolvedOptions['findUser']>
  const passwords = await createPasswordHasher(options.password, fastify.log)
  fastify.decorate('passwordHashing', passwordHashing(passwords))
  const docs = createApiDocs(fastify, options)
  const refreshTokens = options.refreshTokens === false
    ? undefined
    : createRefreshTokens({ store, ...options.refreshTokens, familyDenyMs: revocation.familyDenyMs })
  const issue = createTokenIssuer({ tokens, refreshTokens, claims: options.claims })
  const revocationEpoch = revocation.epoch
  // Browser sessions (the refresh token in a cookie) and their device cookies, when they are on.
  const { browserSessions } = options
  // Browser sessions need refresh tokens (checked in the options).
  const sessions = browserSessions === false ? undefined : createBrowserSessions(browserSessions, refreshTokens as RefreshTokens, emit)
  const device = browserSessions === false || browserSessions.device === false ? undefined : { header: browserSessions.header, ...browserSessions.device }
  const devices = device === undefined ? undefined : createDeviceCookies({ ...options, ...device })

  const grants = new Map<string, GrantHandler>([['password', createPasswordGrant({
    findUser,
    onPasswordRehash: options.onPasswordRehash,
    passwords,
    maxPasswordLength: options.password.maxLength,
    throttle: createLoginThrottle({ ...options, store, deviceLockout: device?.lockout }),
    deviceOf: devices?.forLogin,
    offeredScopes,
    revocationEpoch,
    issue,
    emit
  })]])
  if (refreshTokens !== undefined) grants.set('refresh_token', createRefreshGrant({ refreshTokens, findUser, revocationEpoch, issue, emit }))
  if (clients !== undefined && servesClientCredentials(clients)) grants.set('client_credentials', createClientCredentialsGrant({ clients, issue, emit }))
  const authenticateClient = createClientAuthenticator({ ...options, passwords, throttle: createClientThrottle({ ...options, store }), emit })
  const { bodyLimit } = options
  const revocationServed = refreshTokens !== undefined || options.revocableAccessTokens !== false
  const paths: EndpointPaths = { token: '', revocation: undefined, introspection: undefined, jwks: undefined }

  // An encapsulated child: the form parser, the limiter and the error handler stay on these
  // endpoints and never reach the host's other routes.
  await fastify.register(async function oauthEndpoints (scope) {
    await setUpEndpointScope(scope, { ...options, store, emit })
    if (sessions !== undefined) await setUpBrowserSessions(scope)
    tokenEndpoint(scope, { path: options.tokenPath, bodyLimit, authenticateClient, grants: restrictGrantsToClients(grants, clients), docs: docs.tokenRoute, sessions, devices })
    paths.token = scope.prefix + options.tokenPath
    if (revocationServed) {
      revokeEndpoint(scope, {
        path: options.revocationPath,
        bodyLimit,
        authenticateClient,
        tokens,
        refreshTokens,
        revocation,
        revocableAccessTokens: options.revocableAccessTokens !== false,
        emit,
        docs: docs.revokeRoute,
        sessions
      })
      paths.revocation = scope.prefix + options.revocationPath
    }
    if (clients !== undefined && servesIntrospection(clients)) {
      const introspect = createIntrospector({
        tokens, refreshTokens, store, findUser, issuer: options.issuer, revocableAccessTokens: options.revocableAccessTokens !== false
      })
      introspectEndpoint(scope, {
        path: options.introspectionPath,
        bodyLimit,
        authenticateClient,
        clients,
        introspect,
        perClient: options.introspectionRateLimit,
        store,
        emit,
        docs: docs.introspectRoute
      })
      paths.introspection = scope.prefix + options.introspectionPath
    }
  }, { prefix })
  // The public keys, for services that verify our tokens; an app with HMAC keys alone has none.
  if (options.jwksPath !== false && tokens.publicJwks.length > 0) {
    const jwksPath = options.jwksPath
    await fastify.register(async (scope) => {
      jwksEndpoint(scope, { path: jwksPath, publicJwks: tokens.publicJwks })
      paths.jwks = scope.prefix + jwksPath
    }, { prefix })
  }
  // RFC 8414 §3.1: clients look for the metadata at a path derived from the issuer alone, so the
  // plugin's prefix does not apply to it (it does to the endpoints, and to their URLs in it).
  const { metadataIssuer } = options
  if (metadataIssuer !== undefined) {
    const scopes = [...new Set([...Object.keys(options.scopes), ...clientScopes(clients)])]
    await fastify.register(async (scope) => {
      metadataEndpoint(scope, {
        issuer: options.issuer as string,
        issuerUrl: metadataIssuer,
        paths,
        grantTypes: [...grants.keys()],
        clients,
        publicClient: options.publicClient,
        scopes,
        docs: docs.metadataRoute
      })
    })
  }
}

/** The plugin: registers the `/token` route and the `authenticate` and `requireScopes` decorators. */
const fastifyTokenAuth = fp(plugin, { fastify: '5.x', name: 'fastify-token-auth' })

export default fastifyTokenAuth
export { fastifyTokenAuth }
export { hashPassword, verifyPassword, needsRehash, type HashParameters, type PasswordHashing } from './password/hasher.js'
export { createMemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { notFoundHandler, requestLogSerializer, type RequestLogFields } from './logging/request-log.js'
/** What a custom store throws when its backend cannot be reached: the plugin answers 503. */
export { StoreUnavailableError } from './errors.js'
/** What a store throws when it has no room for a new key and will not forget live state to make some: the plugin answers 503. */
export { StoreFullError } from './errors.js'
/** What `fastify.passwordHashing` rejects with when the hashing pool is full: 503 with `Retry-After`. */
export { HashingBusyError } from './errors.js'
export {
  createPostgresStore, migratePostgresStore, postgresStoreMigrationSql,
  type PostgresStore, type PostgresStoreOptions, type PostgresStoreLocation, type PostgresQueryable, type PostgresSweepResult
} from './stores/postgres.js'
export { createSplitStore, type SplitStoreOptions } from './stores/split.js'
export { createRedisStore, type RedisStoreOptions, type RedisClient } from './stores/redis.js'
/** Most live refresh families (sessions) a store keeps for one user; custom stores keep the same cap. */
export { MAX_FAMILIES_PER_USER } from './stores/types.js'
export type {
  AuthStore, ThrottleRule, ReserveResult, HitResult, RefreshFamily, RefreshLookup, RotateResult, RotateRules, RevocationState
} from './stores/types.js'
export type {
  FastifyTokenAuthOptions, FastifyTokenAuthBaseOptions, KeySourceOptions, UserRecord, ClientRecord, ClientGrantType, PasswordOptions, WindowLimit, BackoffLimit, LoginThrottleOptions,
  RefreshTokenOptions, RevocableAccessTokenOptions, BrowserSessionOptions
} from './options/types.js'
export type { AuthUser, CustomClaims, AccessTokenClaims } from './tokens/claims.js'
export type { KeyOption, KeyMaterial, SigningAlgorithm, JwksClientOptions } from './options/keys.js'
export type { AuthEvent, AuthEventType } from './logging/events.js'
export type { TokenResponse } from './grants/grant.js'
export type { Introspection, ActiveToken } from './tokens/introspect.js'
export type { OAuthErrorCode, BearerErrorCode } from './errors.js'
