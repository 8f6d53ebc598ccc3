import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import formbody from '@fastify/formbody'
import rateLimit from '@fastify/rate-limit'
import { oauthCodeOf, oauthError, StoreUnavailableError, type OAuthError } from './errors.js'
import type { EmitEvent } from './events.js'
import type { ClientRecord, ResolvedOptions, UserRecord } from './options.js'
import { LimiterFullError } from './concurrency.js'
import type { PasswordHasher } from './password.js'
import type { LoginThrottle } from './throttle.js'
import type { TokenService } from './tokens.js'
import { SCOPE_TOKEN } from './authenticate.js'
import { requestLogSerializer } from './log-serializers.js'
import { documentRoute, type ApiDocs } from './openapi.js'
import type { AuthStore } from './stores/types.js'
import { rateLimitStore } from './rate-limit-store.js'
import type { RefreshTokens } from './refresh.js'
import type { Revocation } from './revocation.js'
import type { EndpointHelpers } from './revoke-route.js'

export interface TokenRouteContext {
  options: ResolvedOptions
  tokens: TokenService
  passwords: PasswordHasher
  throttle: LoginThrottle
  emit: EmitEvent
  docs: ApiDocs
  store: AuthStore
  revocation: Revocation
  /** Present when refresh tokens are on. */
  refresh: RefreshTokens | undefined
  /** Registers the revocation endpoint in this scope, when it is on. */
  revokeRoute: ((fastify: FastifyInstance, helpers: EndpointHelpers) => Promise<void>) | undefined
}

type Form = Record<string, string>

const MAX_USERNAME_LENGTH = 256
const MAX_SCOPE_LENGTH = 1024
const ONE_FAILURE = 'Invalid username or password'

/** The answer to a token request, as RFC 6749 §5.1 spells it. */
export interface TokenResponse {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  refresh_token?: string
  scope?: string
}

/**
 * Reads the form under the rules of RFC 6749 §3.2: a parameter sent without a value is
 * treated as omitted, and no parameter may be included more than once.
 */
export function readForm (body: unknown): Form {
  if (typeof body !== 'object' || body === null) {
    throw oauthError('invalid_request', 'The request body must be application/x-www-form-urlencoded')
  }
  const form: Form = {}
  for (const [name, value] of Object.entries(body)) {
    if (Array.isArray(value)) throw oauthError('invalid_request', `The "${safeName(name)}" parameter is repeated`)
    if (typeof value === 'string' && value !== '') form[name] = value
  }
  return form
}

/** A parameter name as it may be echoed in a description: short and plain. */
function safeName (name: string): string {
  return /^[a-z_]{1,32}$/.test(name) ? name : 'a'
}

/** RFC 6749 §3.3: a space-delimited list of scope-tokens. */
export function parseScope (scope: string | undefined): string[] | undefined {
  if (scope === undefined) return undefined
  const list = scope.length > MAX_SCOPE_LENGTH ? [] : scope.split(' ')
  if (list.length === 0 || !list.every((s) => SCOPE_TOKEN.test(s))) throw oauthError('invalid_scope', 'The scope is malformed')
  return [...new Set(list)]
}

/** Decodes one part of HTTP Basic client credentials (RFC 6749 §2.3.1: form-urlencoded first). */
function formDecode (value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '))
}

interface ClientCredentials {
  id: string
  secret: string | undefined
  viaBasic: boolean
}

function clientCredentials (request: FastifyRequest, form: Form): ClientCredentials | undefined {
  const header = request.headers.authorization
  const basic = header === undefined ? null : /^basic +([A-Za-z0-9+/]+=*) *$/i.exec(header)
  if (header !== undefined && basic === null) {
    throw oauthError('invalid_client', 'Client authentication must use HTTP Basic')
  }
  if (basic !== null) {
    const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    let id: string, secret: string
    try {
      if (colon < 1) throw new URIError('no client id')
      id = formDecode(decoded.slice(0, colon))
      secret = formDecode(decoded.slice(colon + 1))
    } catch {
      throw oauthError('invalid_client', 'The HTTP Basic client credentials are malformed')
    }
    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
    if (form.client_secret !== undefined || (form.client_id !== undefined && form.client_id !== id)) {
      throw oauthError('invalid_request', 'Client credentials were sent both in the header and in the body')
    }
    return { id, secret: secret === '' ? undefined : secret, viaBasic: true }
  }
  if (form.client_id === undefined) return undefined
  return { id: form.client_id, secret: form.client_secret, viaBasic: false }
}

/**
 * A password or token sent in a query string of these endpoints stays out of their request logs:
 * their request loggers serialize `req` with `requestLogSerializer`, whatever the host set.
 *
 * Through the scope's child-logger factory, on a masking logger made once per parent logger, not
 * through routes' `logSerializers`: with those, pino copies every serializer into each request's
 * logger, which cost a throttled login more than all the plugin's own work for it.
 */
function maskRequestLogs (fastify: FastifyInstance): void {
  const inherited = fastify.childLoggerFactory
  const masking = new WeakMap<FastifyBaseLogger, FastifyBaseLogger>()
  const serializers = { req: requestLogSerializer }
  fastify.setChildLoggerFactory(function maskedChildLogger (logger, bindings, options, rawRequest) {
    let parent = masking.get(logger)
    if (parent === undefined) {
      parent = logger.child({}, { serializers })
      masking.set(logger, parent)
    }
    // Serializers the host set for this scope are kept, except for `req`. Fastify hands them on
    // as a prototype chain, which pino reads with `for…in`: so is the copy.
    const own = options.serializers === undefined
      ? options
      : { ...options, serializers: Object.assign(Object.create(options.serializers) as object, serializers) }
    return inherited.call(this, parent, bindings, own, rawRequest)
  })
}

export async function tokenRoute (fastify: FastifyInstance, context: TokenRouteContext): Promise<void> {
  const { options, tokens, passwords, throttle, emit, docs, refresh, revocation } = context
  const { realm } = options

  // Only forms reach this endpoint: JSON, text and multipart bodies get 415 from Fastify,
  // which the error handler below answers as invalid_request.
  fastify.removeAllContentTypeParsers()
  await fastify.register(formbody, { bodyLimit: options.bodyLimit })

  if (options.rateLimit !== false) {
    // Counted in onRequest: before the body is read, and long before any hashing.
    await fastify.register(rateLimit, {
      max: options.rateLimit.max,
      timeWindow: options.rateLimit.timeWindow,
      hook: 'onRequest',
      // Counted in the plugin's store: shared by every instance when that store is Redis.
      store: rateLimitStore(context.store),
      errorResponseBuilder: (request, context) => {
        emit(request, { type: 'login.throttled', reason: 'per_ip' })
        return oauthError('too_many_requests', 'Too many token requests; retry later', context.ttl / 1000)
      }
    })
  }

  fastify.setErrorHandler(function tokenErrorHandler (error: FastifyError | OAuthError, request, reply) {
    let code = oauthCodeOf(error)
    if (error instanceof StoreUnavailableError) {
      request.log.error({ err: error }, 'the store is unavailable')
      code = 'temporarily_unavailable'
      error = oauthError(code, 'The service is temporarily unavailable; retry later', 1)
    } else if (code === undefined) {
      // Fastify's own errors for what the client sent (400, 413, 415) are malformed requests
      // to OAuth2 (RFC 6749 §5.2); anything else is ours, logged and not described.
      const status = error.statusCode ?? 500
      code = status >= 400 && status < 500 ? 'invalid_request' : 'server_error'
      if (code === 'server_error') request.log.error({ err: error }, 'token endpoint failed')
      error = oauthError(code, code === 'server_error' ? 'The server could not process the request' : 'The request is malformed or too large')
    }
    if (code === 'invalid_client') reply.header('www-authenticate', `Basic realm="${realm}", charset="UTF-8"`)
    return reply
      .code(error.statusCode as number)
      .headers({ 'cache-control': 'no-store', pragma: 'no-cache', ...(error as OAuthError).headers })
      .send({ error: code, error_description: error.message })
  })

  maskRequestLogs(fastify)

  const url = options.tokenPath
  /** RFC 6749 §3.2 and RFC 7009 §2.1: these endpoints take POST only; other methods get 405. */
  function refuseOtherMethods (path: string, endpoint: string): void {
    fastify.route({
      method: ['GET', 'PUT', 'PATCH', 'DELETE'],
      url: path,
      config: documentRoute(null),
      handler: async (_request, reply) => {
        // An error body like every other on these endpoints, so not cacheable either.
        reply.headers({ allow: 'POST', 'cache-control': 'no-store', pragma: 'no-cache' })
        reply.code(405)
        return { error: 'invalid_request', error_description: `The ${endpoint} endpoint accepts POST only` }
      }
    })
  }
  refuseOtherMethods(url, 'token')

  fastify.post(url, { bodyLimit: options.bodyLimit, config: docs.tokenRoute }, async function token (request, reply): Promise<TokenResponse> {
    const form = readForm(request.body)
    const clientId = await authenticateClient(request, form)
    const grantType = form.grant_type
    if (grantType === undefined) throw oauthError('invalid_request', 'The "grant_type" parameter is required')
    let body: TokenResponse
    if (grantType === 'refresh_token' && refresh !== undefined) {
      body = await refresh.grant(request, form.refresh_token, clientId, parseScope(form.scope))
    } else if (grantType === 'password') {
      body = await passwordGrant(request, form, clientId)
    } else {
      throw oauthError('unsupported_grant_type', `Supported grant types: password${refresh === undefined ? '' : ', refresh_token'}`)
    }
    // RFC 6749 §5.1: token responses must not be cached.
    reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
    return body
  })

  async function authenticateClient (request: FastifyRequest, form: Form): Promise<string> {
    const clients = options.clients
    if (clients === undefined) return options.defaultClientId
    const credentials = clientCredentials(request, form)
    const client: ClientRecord | undefined = credentials === undefined ? undefined : clients.get(credentials.id)
    let ok = client !== undefined
    if (client !== undefined && credentials !== undefined) {
      // A confidential client proves itself with its secret; a public one is known by id and
      // must not send a secret it does not have.
      ok = client.secretHash === undefined
        ? credentials.secret === undefined
        : credentials.secret !== undefined && await verifyOrUnavailable(client.secretHash, credentials.secret)
    }
    if (!ok) {
      emit(request, { type: 'client.failure', ...(credentials === undefined ? {} : { clientId: credentials.id }) })
      throw oauthError('invalid_client', credentials === undefined ? 'Client authentication is required' : 'Client authentication failed')
    }
    return (client as ClientRecord).id
  }

  async function verifyOrUnavailable (hash: string | undefined, secret: string): Promise<boolean> {
    try {
      return await passwords.verify(hash, secret)
    } catch (error) {
      if (error instanceof LimiterFullError) throw oauthError('temporarily_unavailable', 'The server is busy; retry later', 1)
      /* c8 ignore next 2 -- verify resolves false for every bad input; this is for a bug */
      throw error
    }
  }

  async function passwordGrant (request: FastifyRequest, form: Form, clientId: string): Promise<TokenResponse> {
    const { username: rawUsername, password: rawPassword } = form
    if (rawUsername === undefined || rawPassword === undefined) {
      throw oauthError('invalid_request', 'The "username" and "password" parameters are required')
    }
    // Cheap checks first: nothing reaches argon2 that could not be a real login.
    if (rawUsername.length > MAX_USERNAME_LENGTH) throw oauthError('invalid_request', 'The username is too long')
    if (rawPassword.length > options.password.maxLength) throw oauthError('invalid_request', 'The password is too long')
    const username = rawUsername.normalize('NFC')
    const requested = parseScope(form.scope)

    const reservation = await throttle(username, request.ip)
    if (!('succeeded' in reservation)) {
      emit(request, { type: 'login.throttled', username, reason: reservation.limit })
      throw oauthError('too_many_requests', 'Too many failed logins; retry later', reservation.retryAfterMs / 1000)
    }

    let user: UserRecord | null | undefined
    let ok: boolean
    try {
      user = await options.findUser?.(username, request)
      const hash = typeof user?.passwordHash === 'string' ? user.passwordHash : undefined
      ok = await verifyOrUnavailable(hash, rawPassword)
    } catch (error) {
      await reservation.cancelled()
      throw error
    }
    if (!ok || user == null || user.disabled === true) {
      emit(request, { type: 'login.failure', username, reason: ok ? 'disabled' : 'bad_credentials' })
      // One answer for a wrong password, an unknown user and a disabled one (ASVS 6.3.8).
      throw oauthError('invalid_grant', ONE_FAILURE)
    }
    await reservation.succeeded()
    const account = user
    if (passwords.needsRehash(account.passwordHash) && options.onPasswordRehash !== undefined) {
      rehash(request, account, rawPassword)
    }

    // RFC 6749 §3.3: the server may grant less than asked, but a scope the user does not
    // have is an error rather than a silent narrowing.
    const allowed = account.scopes ?? []
    if (requested !== undefined && !requested.every((s) => allowed.includes(s))) {
      throw oauthError('invalid_scope', 'The requested scope exceeds what this user may be granted')
    }
    const granted = requested ?? [...allowed]
    const sub = String(account.id ?? account.username)
    const extra = await options.claims?.(account, request)
    await revocation.beforeSign(sub)
    const { token, expiresIn } = tokens.sign({ sub, scope: granted, clientId, extra })
    emit(request, { type: 'login.success', username, clientId })
    const body: TokenResponse = { access_token: token, token_type: 'Bearer', expires_in: expiresIn }
    // RFC 6749 §5.1: scope is required in the answer when it differs from the request.
    if (requested === undefined && granted.length > 0) body.scope = granted.join(' ')
    if (refresh !== undefined) body.refresh_token = await refresh.start({ sub, username, clientId, scope: granted })
    return body
  }

  await context.revokeRoute?.(fastify, { readForm, authenticateClient, refuseOtherMethods })

  /** Hands a fresh hash to the host after the answer is on its way; a failure is only logged. */
  function rehash (request: FastifyRequest, user: UserRecord, password: string): void {
    passwords.hash(password)
      .then(async (newHash) => {
        await options.onPasswordRehash?.(user, newHash)
        emit(request, { type: 'password.rehashed', username: user.username })
      })
      .catch((error: unknown) => {
        request.log.warn({ err: error instanceof LimiterFullError ? undefined : error }, 'password rehash skipped')
      })
  }
}
