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
import { cacheVerifications } from './verify-cache.js'

const plugin: FastifyPluginAsync<FastifyJwtAuthOptions> = async function fastifyJwtAuth (fastify, opts) {
  const options = resolveOptions(opts)
  const emit = createEventEmitter(options.onAuthEvent)
  // A client sends the same access token on every call: its signature is checked once.
  const tokens = cacheVerifications(await createTokenService(fastify, options), options.clockTolerance)
  const { authenticate, requireScopes } = createAuthenticator(tokens, options.realm, emit)

  fastify.decorate('authenticate', authenticate)
  fastify.decorate('requireScopes', requireScopes)
  if (!fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null as unknown as AuthUser)

  if (options.findUser === undefined) return

  const store = options.store ?? createMemoryStore()
  if (options.store === undefined) fastify.addHook('onClose', async () => { await store.close?.() })
  const passwords = await createPasswordHasher(options.password)
  const throttle = createLoginThrottle(store, options)
  // An encapsulated child: the form parser, the limiter and the error handler stay on the
  // token endpoint and never reach the host's other routes. fastify-plugin makes Fastify
  // ignore the host's `prefix` for this plugin, so it is handed on to the child by hand.
  const { prefix } = opts as { prefix?: string }
  await fastify.register(tokenRoute, { prefix, options, tokens, passwords, throttle, emit })
}

/** The plugin: registers the `/token` route and the `authenticate` and `requireScopes` decorators. */
const fastifyJwtAuth = fp(plugin, { fastify: '5.x', name: 'fastify-jwt-auth' })

export default fastifyJwtAuth
export { fastifyJwtAuth }
export { hashPassword, verifyPassword, needsRehash, type HashParameters } from './password.js'
export { createMemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export type { AuthStore, ThrottleRule, ReserveResult } from './stores/types.js'
export type {
  FastifyJwtAuthOptions, UserRecord, ClientRecord, PasswordOptions, WindowLimit, BackoffLimit, LoginThrottleOptions
} from './options.js'
export type { AuthUser } from './authenticate.js'
export type { AccessTokenClaims } from './tokens.js'
export type { AuthEvent, AuthEventType } from './events.js'
export type { TokenResponse } from './token-route.js'
export type { OAuthErrorCode, BearerErrorCode } from './errors.js'
