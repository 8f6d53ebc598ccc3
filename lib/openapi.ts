import type { FastifyInstance, RouteOptions } from 'fastify'
import { SwaggerOrderError } from './errors.js'
import type { OAuthErrorCode } from './errors.js'
import type { ResolvedOptions } from './options/resolve.js'
import { clientScopes, servesClientCredentials } from './options/clients.js'

/*
 * The OpenAPI side of the plugin, for hosts that register @fastify/swagger (an optional peer).
 *
 * @fastify/swagger collects routes in an `onRoute` hook, keeping each route's options object, and
 * builds the document only when `fastify.swagger()` is first called, after `ready`: it reads
 * `route.schema` and `route.config.swaggerTransform` then, not when the route is added. So:
 *
 * - host routes: our own `onRoute` hook writes `schema.security` for every route whose hooks
 *   include `authenticate` or a `requireScopes(...)` check. It does not matter whether it runs
 *   before or after @fastify/swagger's hook: both see the same options object, and the schema is
 *   read later.
 * - our routes: they carry a `swaggerTransform` in their `config` that hands @fastify/swagger a
 *   documentation-only schema (never seen by Fastify, so it validates and serializes nothing), and
 *   the token route's one also adds the OAuth2 password-flow security scheme that Swagger UI's
 *   "Authorize" button logs in with. @fastify/swagger sees only routes added after it, so it must
 *   be registered before this plugin; the other order is refused at `ready`, with the fix.
 */

/** The name of the security scheme in the document: FastAPI's, which Swagger UI users know. */
export const SECURITY_SCHEME = 'OAuth2PasswordBearer'

/** How many instances of the plugin document into each @fastify/swagger (its `swagger` decorator). */
const schemesPerDocument = new WeakMap<object, number>()

/**
 * The key for a @fastify/swagger registered under another name (its `decorator` option, for
 * several documents), which the plugin cannot see: the instances documenting into those are
 * numbered across the whole process, so that no two of them in one document share a name.
 */
const renamedSwagger = {}

/**
 * The scheme name of the next instance documenting into the @fastify/swagger this scope sees:
 * SECURITY_SCHEME, then `OAuth2PasswordBearer2` and so on for instances in other scopes, each of
 * which has a token endpoint of its own and signs its own tokens.
 */
function schemeName (fastify: FastifyInstance): string {
  const decorator = (fastify as { swagger?: unknown }).swagger
  const document = typeof decorator === 'function' ? decorator : renamedSwagger
  const count = (schemesPerDocument.get(document) ?? 0) + 1
  schemesPerDocument.set(document, count)
  return count === 1 ? SECURITY_SCHEME : `${SECURITY_SCHEME}${count}`
}

/** A JSON Schema, or a piece of an OpenAPI document. */
type Json = Record<string, unknown>

const kScopes = Symbol('fastify-token-auth.scopes')

/**
 * Marks one of our preHandlers with the scopes it checks (none for `authenticate`), so that a
 * route using it can be documented as needing the bearer token and those scopes.
 */
export function tagScopes<T extends object> (handler: T, scopes: readonly string[]): T {
  Object.defineProperty(handler, kScopes, { value: Object.freeze([...scopes]) })
  return handler
}

// The route-level hooks where an authentication check can sit.
const AUTH_HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const

/** The scopes a route needs through our preHandlers, or `undefined` when it uses none of them. */
function routeScopes (route: RouteOptions): string[] | undefined {
  let found: Set<string> | undefined
  for (const name of AUTH_HOOKS) {
    const hooks: unknown = route[name]
    for (const hook of Array.isArray(hooks) ? hooks : [hooks]) {
      const scopes = (hook as { [kScopes]?: readonly string[] } | undefined)?.[kScopes]
      if (scopes === undefined) continue
      found ??= new Set()
      for (const scope of scopes) found.add(scope)
    }
  }
  return found === undefined ? undefined : [...found]
}

/** How one of our routes appears in the document. */
export interface OperationDoc {
  summary: string
  description: string
  /** Media types of the request body. */
  consumes?: string[]
  /** The request body, as a JSON Schema. */
  body?: Json
  /** The request headers, as a JSON Schema of an object. */
  headers?: Json
  /** The answers by status code, each a JSON Schema with a `description` (and `headers`). */
  response: Record<string, Json>
}

/**
 * What @fastify/swagger hands a route's `swaggerTransform`: the route's URL (prefixes included)
 * and the document being built, OpenAPI 3 or Swagger 2. Typed loosely on purpose: @fastify/swagger
 * is optional, so its types must not leak into ours.
 */
interface TransformArgs {
  url: string
  openapiObject?: { components?: { securitySchemes?: object } }
  swaggerObject?: { securityDefinitions?: object }
}

/** A route `config` that @fastify/swagger reads; spread it into one of our routes' `config`. */
export interface RouteDocConfig {
  swaggerTransform?: (args: TransformArgs) => { schema: object, url: string }
}

/**
 * The `config` that documents one of the plugin's routes, e.g. `config: documentRoute(() => doc)`;
 * `null` hides the route from the document. `describe` is called for every document built, so
 * that @fastify/swagger, which rewrites parts of the schemas it is given, always gets fresh ones.
 */
export function documentRoute (describe: (() => OperationDoc) | null): RouteDocConfig {
  return {
    swaggerTransform ({ url }) {
      return { schema: describe === null ? { hide: true } : describe(), url }
    }
  }
}

/** The error body of RFC 6749 §5.2, limited to the codes that one status can carry. */
function oauthErrorBody (description: string, codes: OAuthErrorCode[], retryAfter = false): Json {
  return {
    description,
    type: 'object',
    required: ['error'],
    properties: {
      error: { type: 'string', enum: codes },
      error_description: { type: 'string', description: 'A human-readable explanation; do not parse it.' }
    },
    ...(retryAfter ? { headers: { 'retry-after': { type: 'integer', description: 'Seconds to wait before retrying' } } } : {})
  }
}

const NO_STORE = {
  'cache-control': { type: 'string', enum: ['no-store'] },
  pragma: { type: 'string', enum: ['no-cache'] }
}

/** The client credentials of the body (RFC 6749 §2.3.1), when clients are configured. */
function clientFields (options: ApiDocsOptions): Json {
  return options.clients === undefined
    ? {}
    : {
        client_id: { type: 'string' },
        client_secret: { type: 'string', format: 'password' }
      }
}

const CLIENT_AUTH = ' The client authenticates with HTTP Basic or with `client_id` and `client_secret`.'

/** With browser sessions: the signal header, and the 403 of a request that fails the CSRF check. */
function browserParts (options: ApiDocsOptions, cookieRole: string): { headers?: Json, refusal?: Json, note: string } {
  const sessions = options.browserSessions
  if (sessions === false) return { note: '' }
  return {
    headers: {
      type: 'object',
      properties: {
        [sessions.header]: {
          type: 'string',
          enum: ['cookie'],
          description: `Browser sessions: sent by the app's own page, ${cookieRole}. Other clients leave it out.`
        }
      }
    },
    refusal: oauthErrorBody('The request relies on the session cookie (or asks for it) without the header, or comes from an origin that is not the app\'s (CSRF).', ['invalid_request']),
    note: ` A page that sends \`${sessions.header}: cookie\` uses the \`${sessions.cookieName}\` cookie (httpOnly) ${cookieRole}; the body wins when it has a token.`
  }
}
const UNAVAILABLE = 'The server is busy or its store is unavailable; retry later.'

/** With clients, failed client authentications are throttled by `loginThrottle.perUsernameAndIp`. */
function clientLimit (options: ApiDocsOptions): string[] {
  return options.clients !== undefined && options.perUsernameAndIp !== false ? ['failed client authentications from this address'] : []
}

/** The 429 of an endpoint with these limits, e.g. `['requests from this address']`. */
function tooMany (limits: string[]): Json {
  return oauthErrorBody(`Too many ${limits.join(', or too many ')}.`, ['too_many_requests'], true)
}

/** The token endpoint (RFC 6749 §4.3.2, §6, §5.1, §5.2), as configured. */
function tokenDoc (options: ApiDocsOptions): OperationDoc {
  const clients = options.clients !== undefined
  const refresh = options.refreshTokens !== false
  const clientCredentials = servesClientCredentials(options.clients)
  const grantTypes = ['password', ...(refresh ? ['refresh_token'] : []), ...(clientCredentials ? ['client_credentials'] : [])]
  const browser = browserParts(options, 'to receive the refresh token in a cookie instead of the body, and to refresh with no token in the body')
  const response: Record<string, Json> = {
    200: {
      description: 'An access token (RFC 6749 §5.1). Never cached.',
      type: 'object',
      // With refresh tokens on, the user grants always answer one; the client credentials grant never does.
      // A browser session's refresh token is in the cookie, not the body.
      required: ['access_token', 'token_type', 'expires_in', ...(refresh && !clientCredentials && browser.headers === undefined ? ['refresh_token'] : [])],
      properties: {
        access_token: { type: 'string', description: 'A signed JWT access token (RFC 9068); send it as `Authorization: Bearer <token>`.' },
        token_type: { type: 'string', enum: ['Bearer'] },
        expires_in: { type: 'integer', description: 'Lifetime of the access token in seconds.' },
        refresh_token: {
          type: 'string',
          description: refresh
            ? 'An opaque refresh token for `grant_type=refresh_token`; each use spends it and answers a new one.'
            : 'Present when refresh tokens are enabled.'
        },
        scope: { type: 'string', description: 'The granted scopes, space-delimited, when they differ from the request.' }
      },
      headers: NO_STORE
    },
    400: oauthErrorBody('A malformed request, wrong credentials (one answer for a wrong password, an unknown user and a disabled one), ' +
      (refresh ? 'a refresh token that is invalid, expired, revoked or already used, ' : '') + 'or a scope the user may not have.',
    ['invalid_request', 'invalid_grant', 'unsupported_grant_type', 'invalid_scope', ...(clients ? ['unauthorized_client' as const] : [])])
  }
  if (clients) response[401] = oauthErrorBody('Client authentication failed (with `WWW-Authenticate: Basic`).', ['invalid_client'])
  if (browser.refusal !== undefined) response[403] = browser.refusal
  const limits = [
    ...(options.rateLimit !== false ? ['requests from this address'] : []),
    ...(options.perUsernameAndIp !== false || options.perUsername !== false ? ['failed logins'] : []),
    ...clientLimit(options)
  ]
  if (limits.length > 0) response[429] = tooMany(limits)
  response[503] = oauthErrorBody(UNAVAILABLE, ['temporarily_unavailable'], true)

  // Only the password grant needs a username and password, so with two grants only grant_type
  // is required of every request (Swagger UI refuses to send a form missing a required field).
  const passwordOnly = grantTypes.length > 1 ? { description: 'Required with `grant_type=password`.' } : {}
  return {
    summary: refresh
      ? 'Log in or refresh: get an access token with a username and password, or with a refresh token'
      : 'Log in: get an access token with a username and password',
    description: 'The OAuth2 resource owner password grant (RFC 6749 §4.3), for first-party clients. ' +
      (refresh ? 'With `grant_type=refresh_token`, a refresh token gets a new access token and a new refresh token (RFC 6749 §6); the one sent is spent. ' : '') +
      (clientCredentials ? 'With `grant_type=client_credentials`, a confidential client allowed that grant gets an access token for itself, without a refresh token (RFC 6749 §4.4). ' : '') +
      'The body is a form, never JSON. Empty fields count as absent; a repeated field is an error.' +
      (clients ? CLIENT_AUTH : '') + browser.note,
    consumes: ['application/x-www-form-urlencoded'],
    ...(browser.headers === undefined ? {} : { headers: browser.headers }),
    body: {
      type: 'object',
      required: grantTypes.length > 1 ? ['grant_type'] : ['grant_type', 'username', 'password'],
      properties: {
        grant_type: { type: 'string', enum: grantTypes },
        username: { type: 'string', ...passwordOnly },
        password: { type: 'string', format: 'password', ...passwordOnly },
        ...(refresh
          ? { refresh_token: { type: 'string', format: 'password', description: 'Required with `grant_type=refresh_token`.' } }
          : {}),
        scope: {
          type: 'string',
          description: (refresh
            ? 'Space-delimited scopes to ask for; all of the user\'s when absent. On refresh, at most those of the login.'
            : 'Space-delimited scopes to ask for; all of the user\'s when absent.') +
            (clientCredentials ? ' With client credentials: all of the client\'s when absent.' : '')
        },
        ...clientFields(options)
      }
    },
    response
  }
}

/** The revocation endpoint (RFC 7009 §2), as configured. */
function revokeDoc (options: ApiDocsOptions): OperationDoc {
  const browser = browserParts(options, 'to log out: with no token in the body, the cookie\'s session ends and the cookie is cleared')
  const kinds = [
    ...(options.refreshTokens === false ? [] : ['a refresh token (its whole family ends)']),
    ...(options.revocableAccessTokens === false ? [] : ['an access token (denied until it expires)'])
  ]
  const response: Record<string, Json> = {
    200: {
      description: 'Revoked; or the token was unknown, invalid, expired or already revoked, which gets the same answer (RFC 7009 §2.2). ' +
        'The body is an empty JSON object.',
      type: 'object',
      additionalProperties: false,
      headers: NO_STORE
    },
    400: oauthErrorBody('A malformed request, a token issued to another client' +
      (options.revocableAccessTokens === false ? ', or an access token: they cannot be revoked here and expire on their own' : '') + '.',
    ['invalid_request', 'unauthorized_client', ...(options.revocableAccessTokens === false ? ['unsupported_token_type' as const] : [])])
  }
  if (options.clients !== undefined) response[401] = oauthErrorBody('Client authentication failed (with `WWW-Authenticate: Basic`).', ['invalid_client'])
  if (browser.refusal !== undefined) response[403] = browser.refusal
  // The per-IP limit of the token endpoint covers this one, and so does the throttle of failed
  // client authentications; the login throttle does not.
  const limits = [...(options.rateLimit !== false ? ['requests from this address'] : []), ...clientLimit(options)]
  if (limits.length > 0) response[429] = tooMany(limits)
  response[503] = oauthErrorBody(UNAVAILABLE, ['temporarily_unavailable'], true)
  return {
    summary: 'Revoke a token (log out)',
    description: `Token revocation (RFC 7009): revokes ${kinds.join(', or ')}. The type is told from the token, so a wrong ` +
      '`token_type_hint` still revokes. The body is a form, never JSON.' + (options.clients !== undefined ? CLIENT_AUTH : '') + browser.note,
    consumes: ['application/x-www-form-urlencoded'],
    ...(browser.headers === undefined ? {} : { headers: browser.headers }),
    body: {
      type: 'object',
      // A browser session's logout carries its token in the cookie.
      ...(browser.headers === undefined ? { required: ['token'] } : {}),
      properties: {
        token: { type: 'string', format: 'password', description: 'The token to revoke.' },
        token_type_hint: { type: 'string', enum: ['refresh_token', 'access_token'], description: 'Optional; the type is told from the token.' },
        ...clientFields(options)
      }
    },
    response
  }
}

/** The introspection endpoint (RFC 7662 §2). */
function introspectDoc (options: ApiDocsOptions): OperationDoc {
  const response: Record<string, Json> = {
    200: {
      description: 'What the token is worth now (RFC 7662 §2.2). Any token that would not be accepted — expired, revoked, replaced, ' +
        'forged, unknown, of another issuer — gets exactly `{"active": false}`, whatever the reason. Never cached.',
      type: 'object',
      required: ['active'],
      properties: {
        active: { type: 'boolean' },
        scope: { type: 'string', description: 'The scopes of the token, space-delimited.' },
        client_id: { type: 'string' },
        username: { type: 'string', description: 'For a refresh token: the username of the login.' },
        token_type: { type: 'string', enum: ['Bearer', 'refresh_token'] },
        exp: { type: 'integer' },
        iat: { type: 'integer' },
        nbf: { type: 'integer' },
        sub: { type: 'string' },
        // A string or a list of them; Swagger 2 has no oneOf to say so.
        aud: { description: 'The audience: a string, or an array of strings.' },
        iss: { type: 'string' },
        jti: { type: 'string' }
      },
      headers: NO_STORE
    },
    400: oauthErrorBody('A malformed request, or no `token`.', ['invalid_request']),
    401: oauthErrorBody('Client authentication failed, or the client may not introspect (with `WWW-Authenticate: Basic`).', ['invalid_client']),
    503: oauthErrorBody(UNAVAILABLE, ['temporarily_unavailable'], true)
  }
  const limits = [
    ...(options.rateLimit !== false || options.introspectionRateLimit !== false ? ['requests from this address or this client'] : []),
    ...clientLimit(options)
  ]
  if (limits.length > 0) response[429] = tooMany(limits)
  return {
    summary: 'Introspect a token (for resource servers)',
    description: 'Token introspection (RFC 7662): whether an access or refresh token is active, and what it says. Only clients ' +
      'allowed to introspect are answered.' + CLIENT_AUTH + ' The body is a form, never JSON.',
    consumes: ['application/x-www-form-urlencoded'],
    body: {
      type: 'object',
      required: ['token'],
      properties: {
        token: { type: 'string', format: 'password', description: 'The token to introspect.' },
        token_type_hint: { type: 'string', enum: ['access_token', 'refresh_token'], description: 'Optional; the type is told from the token.' },
        ...clientFields(options)
      }
    },
    response
  }
}

/** The authorization server metadata (RFC 8414 §3). */
function metadataDoc (): OperationDoc {
  return {
    summary: 'Authorization server metadata',
    description: 'The endpoints, grant types, client authentication methods and scopes of this server (RFC 8414), ' +
      'for clients that configure themselves. Cacheable.',
    response: {
      200: {
        description: 'The metadata (RFC 8414 §2).',
        type: 'object',
        required: ['issuer', 'token_endpoint', 'response_types_supported'],
        additionalProperties: true,
        properties: {
          issuer: { type: 'string' },
          token_endpoint: { type: 'string' },
          revocation_endpoint: { type: 'string' },
          introspection_endpoint: { type: 'string' },
          jwks_uri: { type: 'string' },
          grant_types_supported: { type: 'array', items: { type: 'string' } },
          response_types_supported: { type: 'array', items: { type: 'string' } },
          scopes_supported: { type: 'array', items: { type: 'string' } },
          token_endpoint_auth_methods_supported: { type: 'array', items: { type: 'string' } }
        }
      }
    }
  }
}

/** What the plugin needs from this module. */
/** The options the document is derived from. */
export type ApiDocsOptions = Pick<ResolvedOptions,
  'openapi' | 'scopes' | 'clients' | 'refreshTokens' | 'revocableAccessTokens' | 'rateLimit' | 'perUsernameAndIp' | 'perUsername' | 'introspectionRateLimit' |
  'browserSessions'>

export interface ApiDocs {
  /** The `config` of the token endpoint: documents it and carries the security scheme. */
  tokenRoute: RouteDocConfig
  /** The `config` of the revocation endpoint's POST route. */
  revokeRoute: RouteDocConfig
  /** The `config` of the introspection endpoint's POST route. */
  introspectRoute: RouteDocConfig
  /** The `config` of the metadata route. */
  metadataRoute: RouteDocConfig
}

/**
 * Wires the OpenAPI side for a plugin instance that has a token endpoint. Call it while the
 * plugin registers, before its routes.
 */
export function createApiDocs (fastify: FastifyInstance, options: ApiDocsOptions): ApiDocs {
  const none: ApiDocs = { tokenRoute: {}, revokeRoute: {}, introspectRoute: {}, metadataRoute: {} }
  if (!options.openapi) return none
  // @fastify/swagger documents only routes added after it registered its hook.
  const swaggerFirst = fastify.hasPlugin('@fastify/swagger')
  if (!swaggerFirst) {
    fastify.addHook('onReady', async function checkSwaggerOrder () {
      // A scope's list of plugins is copied when the scope is made, so one registered later in
      // an outer scope is not in it; its `swagger` decorator is, as scopes inherit decorators.
      if (fastify.hasPlugin('@fastify/swagger') || typeof (fastify as { swagger?: unknown }).swagger === 'function') throw new SwaggerOrderError()
    })
    return none
  }
  const name = schemeName(fastify)

  // Every scope some route needs is listed in the flow, so each requirement names a known scope.
  const required = new Set<string>()
  fastify.addHook('onRoute', function documentSecurity (route) {
    const scopes = routeScopes(route)
    if (scopes === undefined) return
    for (const scope of scopes) required.add(scope)
    // A requirement the host wrote itself is theirs to keep. A new schema object, because one
    // schema may be shared by several routes.
    if ((route.schema as { security?: unknown } | undefined)?.security === undefined) {
      route.schema = { ...route.schema, security: [{ [name]: scopes }] } as RouteOptions['schema']
    }
  })

  function scheme (tokenUrl: string, swagger2: boolean): Json {
    // Each flow lists the scopes it can grant: users those of `scopes`, clients their own. Every
    // scope a route requires is in the password flow too, so that each requirement names a
    // declared scope (Swagger 2 has no other flow). A Map, then fromEntries: a scope may be
    // named `__proto__`.
    const described = (names: Iterable<string>, into = new Map<string, string>()): Map<string, string> => {
      for (const scope of names) if (!into.has(scope)) into.set(scope, Object.hasOwn(options.scopes, scope) ? options.scopes[scope] as string : '')
      return into
    }
    const password = { tokenUrl, scopes: Object.fromEntries(described(required, new Map(Object.entries(options.scopes)))) }
    const clientCredentials = servesClientCredentials(options.clients)
    const description = 'Log in with a username and password' + (clientCredentials ? ' (or, as a confidential client, with client credentials)' : '') +
      '; the access token is then sent as a bearer token (RFC 6750).'
    return swagger2
      ? { type: 'oauth2', flow: 'password', ...password, description }
      : {
          type: 'oauth2',
          flows: {
            password,
            ...(clientCredentials ? { clientCredentials: { tokenUrl, scopes: Object.fromEntries(described(clientScopes(options.clients))) } } : {})
          },
          description
        }
  }

  const { swaggerTransform: documentToken } = documentRoute(() => tokenDoc(options)) as Required<RouteDocConfig>
  return {
    tokenRoute: {
      swaggerTransform (args) {
        // The token route's own URL, prefixes included, is the one Swagger UI must post to. A
        // scheme of that name that the host defined itself is left as it is, and the objects are
        // new ones: those @fastify/swagger hands over may be the host's own options.
        if (args.swaggerObject === undefined) {
          // @fastify/swagger always gives an OpenAPI document its `components`.
          const { components } = args.openapiObject as { components: { securitySchemes?: object } }
          components.securitySchemes = { [name]: scheme(args.url, false), ...components.securitySchemes }
        } else {
          args.swaggerObject.securityDefinitions = { [name]: scheme(args.url, true), ...args.swaggerObject.securityDefinitions }
        }
        return documentToken(args)
      }
    },
    revokeRoute: documentRoute(() => revokeDoc(options)),
    introspectRoute: documentRoute(() => introspectDoc(options)),
    metadataRoute: documentRoute(metadataDoc)
  }
}
