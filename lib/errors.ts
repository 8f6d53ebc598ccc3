import createError, { type FastifyErrorConstructor } from '@fastify/error'

/*
 * Every error the plugin raises is built here, and every error body it sends. Three kinds, kept apart:
 *
 * 1. configuration errors, thrown while the host registers the plugin;
 * 2. token-endpoint errors, answered as RFC 6749 §5.2 JSON by the route's own error handler;
 * 3. bearer errors, thrown from `authenticate` with `WWW-Authenticate` (RFC 6750 §3) in
 *    `error.headers`, so the host's `setErrorHandler` stays in control of the body.
 *
 * The `code` of each is public API (see the README's error table).
 */

/** Thrown at registration when an option is missing or wrong. */
export const InvalidOptionError = createError('FST_TOKEN_AUTH_INVALID_OPTION', 'fastify-token-auth: option "%s" %s', 500)

/**
 * Thrown at registration when the plugin is registered a second time in the same scope (or in a
 * scope below one that has it): its decorators are already there, and a second token endpoint
 * with other options would be ambiguous. Register it once; child scopes see its decorators.
 */
export const AlreadyRegisteredError = createError('FST_TOKEN_AUTH_ALREADY_REGISTERED',
  'fastify-token-auth: the plugin is already registered in this scope or a parent scope; register it once ' +
  '(its decorators reach every child scope), or register each instance in a sibling scope of its own', 500)

/** Thrown at registration when an HMAC secret (`secret`, or an HS* entry of `keys`) is short or a well-known placeholder. */
export const WeakSecretError = createError('FST_TOKEN_AUTH_WEAK_SECRET', 'fastify-token-auth: option "%s" %s', 500)

/**
 * Thrown by `authenticate` when the keys that would check a token cannot be had (a JWKS endpoint
 * that is down or broken): the token may well be good, so 503 with `Retry-After`, not 401.
 */
export const KeysUnavailableError = createError('FST_TOKEN_AUTH_KEYS_UNAVAILABLE', '%s', 503)

/**
 * Thrown at `ready` when @fastify/swagger was registered after this plugin: it documents only the
 * routes added after it, so the token endpoint and its security scheme would be missing.
 */
export const SwaggerOrderError = createError('FST_TOKEN_AUTH_SWAGGER_ORDER',
  'fastify-token-auth: @fastify/swagger was registered after this plugin and cannot document the token endpoint; ' +
  'register @fastify/swagger first, or pass `openapi: false`', 500)

/**
 * A store call failed or did not answer in time. The token endpoint answers it as 503
 * `temporarily_unavailable`; `authenticate` with `revocableAccessTokens` as 503 (fail closed).
 * The cause stays on `error.cause` for the logs and is never sent to a client.
 */
export const StoreUnavailableError = createError('FST_TOKEN_AUTH_STORE_UNAVAILABLE', 'fastify-token-auth: the store is unavailable', 503)

/**
 * A table of the memory store is full of live entries, and the call would have added a key.
 * The store refuses the new key rather than forget a block, a revocation or a session to make
 * room (fail closed); the endpoints answer 503 `temporarily_unavailable` with `Retry-After`.
 * Reads never raise it, so `authenticate` never does. No stack trace is captured: it is an
 * answer to a flood, raised for each of its requests while the table is full, and a stack would
 * cost each one more than the rest of the store call (and point only into the store).
 */
export const StoreFullError = createError('FST_TOKEN_AUTH_STORE_FULL', 'fastify-token-auth: the store\'s %s table is full', 503, Error, false)

/**
 * `fastify.passwordHashing` found the hashing pool full (every slot running and every queue place
 * taken, or its wait for a slot ran out): 503 with `Retry-After: 1`, which Fastify's error
 * handler sends as they are, so a host's sign-up route answers as the token endpoint does.
 */
export const HashingBusyError = createError('FST_TOKEN_AUTH_HASHING_BUSY', 'The server is busy; retry later', 503, Error, false)

/** A new `HashingBusyError`, with its `Retry-After`. */
export function hashingBusy (): Error & { code: string, statusCode: number, headers: Record<string, string> } {
  return Object.assign(new HashingBusyError(), { headers: { 'retry-after': '1' } })
}

/** A `StoreFullError` for `table`, which it names in `error.table` (the `reason` of the `store.full` event). */
export function storeFull (table: string): Error & { code: string, table: string } {
  return Object.assign(new StoreFullError(table), { table })
}

/**
 * An error answered to a client, with its message as the only parameter. No stack trace is
 * captured: the error is an answer, not a fault (its stack would only point into this plugin),
 * and under a flood of bad requests capturing one per request is a real share of their cost.
 */
function clientError (code: string, statusCode: number): FastifyErrorConstructor {
  return createError(code, '%s', statusCode, Error, false)
}

/** The RFC 6749 §5.2 error codes the token endpoint answers with, plus the two for throttling and overload. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'unsupported_token_type'
  | 'too_many_requests'
  | 'temporarily_unavailable'
  | 'server_error'

const oauthErrors: Record<OAuthErrorCode, FastifyErrorConstructor> = {
  invalid_request: clientError('FST_TOKEN_AUTH_INVALID_REQUEST', 400),
  // RFC 6749 §5.2: 401 for a failed client authentication.
  invalid_client: clientError('FST_TOKEN_AUTH_INVALID_CLIENT', 401),
  invalid_grant: clientError('FST_TOKEN_AUTH_INVALID_GRANT', 400),
  unauthorized_client: clientError('FST_TOKEN_AUTH_UNAUTHORIZED_CLIENT', 400),
  unsupported_grant_type: clientError('FST_TOKEN_AUTH_UNSUPPORTED_GRANT_TYPE', 400),
  invalid_scope: clientError('FST_TOKEN_AUTH_INVALID_SCOPE', 400),
  // RFC 7009 §2.2.1: revocation of this kind of token is not supported.
  unsupported_token_type: clientError('FST_TOKEN_AUTH_UNSUPPORTED_TOKEN_TYPE', 400),
  // RFC 6585 §4.
  too_many_requests: clientError('FST_TOKEN_AUTH_TOO_MANY_REQUESTS', 429),
  temporarily_unavailable: clientError('FST_TOKEN_AUTH_TEMPORARILY_UNAVAILABLE', 503),
  server_error: clientError('FST_TOKEN_AUTH_SERVER_ERROR', 500)
}

// RFC 9110 §15.5.6: a method the endpoint does not support, answered in the endpoint's error shape.
const MethodNotAllowed = clientError('FST_TOKEN_AUTH_METHOD_NOT_ALLOWED', 405)

/** An error raised by the token endpoint; `oauthError` is the RFC 6749 §5.2 `error` value. */
export interface OAuthError extends Error {
  code: string
  statusCode: number
  oauthError: OAuthErrorCode
  headers?: Record<string, string>
}

/**
 * Builds a token-endpoint error. `retryAfter` (seconds) adds `Retry-After`, which 429 and
 * 503 answers carry (RFC 6585 §4, RFC 9110 §10.2.3).
 */
export function oauthError (code: OAuthErrorCode, description: string, retryAfter?: number): OAuthError {
  const error = new oauthErrors[code](description) as OAuthError
  error.oauthError = code
  if (retryAfter !== undefined) error.headers = { 'retry-after': String(Math.max(1, Math.ceil(retryAfter))) }
  return error
}

/**
 * The answer to a method other than POST on the token and revocation endpoints (RFC 6749 §3.2,
 * RFC 7009 §2.1): 405 with `Allow: POST` and an `invalid_request` body like every other error there.
 */
export function methodNotAllowed (endpoint: string): OAuthError {
  const error = new MethodNotAllowed(`The ${endpoint} endpoint accepts POST only`) as OAuthError
  error.oauthError = 'invalid_request'
  error.headers = { allow: 'POST' }
  return error
}

// A browser-session request that relies on the cookie without proving it comes from the app.
const CrossSiteRequest = clientError('FST_TOKEN_AUTH_CROSS_SITE_REQUEST', 403)

/**
 * The answer to a token or revocation request that relies on the browser-session cookie (or asks
 * for one) without the signal header, or from an origin that is not the app's: 403 with an
 * `invalid_request` body, like every other error there (a CSRF defence, OWASP CSRF cheat sheet).
 */
export function crossSiteRequest (description: string): OAuthError {
  const error = new CrossSiteRequest(description) as OAuthError
  error.oauthError = 'invalid_request'
  return error
}

/** Seconds a client is told to wait when the store is full (`Retry-After`). */
export const STORE_FULL_RETRY_AFTER = 60
/** The description of the answer to a body that is not a form. */
const FORM_REQUIRED = 'The request body must be application/x-www-form-urlencoded'

/** How an endpoint must treat an error before answering it. */
export type ErrorOrigin = 'client' | 'store' | 'full' | 'fault'

/**
 * Any error thrown while serving an OAuth2 endpoint, as the OAuth2 error to answer, and where it
 * came from: the client (answered as it is), the store (503, logged), a full memory store (503,
 * reported as an event) or a fault of ours or the host's (500 without details, logged).
 */
export function toOAuthError (error: unknown): { error: OAuthError, origin: ErrorOrigin } {
  const raised = error as { code?: unknown, statusCode?: unknown, oauthError?: unknown }
  if (error instanceof StoreUnavailableError) {
    return { error: oauthError('temporarily_unavailable', 'The service is temporarily unavailable; retry later', 1), origin: 'store' }
  }
  if (error instanceof StoreFullError) {
    // The oldest counters of the token endpoints end within their windows (a minute for the
    // per-IP limit): worth a retry then, not at once.
    return { error: oauthError('temporarily_unavailable', 'The service is temporarily unavailable; retry later', STORE_FULL_RETRY_AFTER), origin: 'full' }
  }
  // Built by `oauthError` or `methodNotAllowed` (the per-IP limiter's refusal too).
  if (typeof raised.oauthError === 'string' && typeof raised.code === 'string' && raised.code.startsWith('FST_TOKEN_AUTH_')) {
    return { error: error as OAuthError, origin: 'client' }
  }
  // Fastify's own errors for what the client sent (400, 413, 415) are malformed requests to
  // OAuth2 (RFC 6749 §5.2); anything else is a fault, never described to the client.
  const status = typeof raised.statusCode === 'number' ? raised.statusCode : 500
  // 415: only the form parser is registered on these endpoints, so any other body (JSON above
  // all, which clients often send) lands here; say what the client must send (RFC 6749 §4.3.2,
  // §6; RFC 7009 §2.1: "application/x-www-form-urlencoded").
  if (status === 415) return { error: oauthError('invalid_request', FORM_REQUIRED), origin: 'client' }
  if (status >= 400 && status < 500) return { error: oauthError('invalid_request', 'The request is malformed or too large'), origin: 'client' }
  return { error: oauthError('server_error', 'The server could not process the request'), origin: 'fault' }
}

/**
 * A description as RFC 6749 §5.2 and RFC 6750 §3 allow it: printable ASCII without `"` or `\`
 * (%x20-21 / %x23-5B / %x5D-7E). The plugin's own descriptions keep to that; anything else in
 * one (a value that came from elsewhere) is replaced, so a client's parser never meets it.
 */
function describe (text: string): string {
  return text.replace(/"/g, "'").replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '?')
}

/** An OAuth2 error as an answer: status, headers and the RFC 6749 §5.2 JSON body. */
export interface OAuthErrorResponse {
  statusCode: number
  headers: Record<string, string>
  body: { error: OAuthErrorCode, error_description: string }
}

/**
 * The answer to an OAuth2 error. Never cacheable (RFC 6749 §5.1); a failed client authentication
 * carries the `WWW-Authenticate` challenge of the scheme the client can use (RFC 6749 §5.2).
 */
export function oauthErrorResponse (error: OAuthError, realm: string): OAuthErrorResponse {
  const headers: Record<string, string> = { 'cache-control': 'no-store', pragma: 'no-cache', ...error.headers }
  if (error.oauthError === 'invalid_client') headers['www-authenticate'] = `Basic realm="${realm}", charset="UTF-8"`
  return { statusCode: error.statusCode, headers, body: { error: error.oauthError, error_description: describe(error.message) } }
}

/** The RFC 6750 §3.1 bearer error codes, plus "none" for a request that carried no credentials. */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope'

const bearerErrors = {
  missing: clientError('FST_TOKEN_AUTH_NO_CREDENTIALS', 401),
  invalid_request: clientError('FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER', 400),
  invalid_token: clientError('FST_TOKEN_AUTH_INVALID_TOKEN', 401),
  insufficient_scope: clientError('FST_TOKEN_AUTH_INSUFFICIENT_SCOPE', 403)
}

/** Quotes a value for an auth-param (RFC 9110 §5.6.4 quoted-string). */
function quote (value: string): string {
  return '"' + value.replace(/[\\"]/g, '\\$&') + '"'
}

/**
 * Builds a bearer error with its `WWW-Authenticate` challenge (RFC 6750 §3). With no
 * `code`, the request carried no usable credentials and the challenge names no error.
 */
export function bearerError (
  realm: string,
  code: BearerErrorCode | undefined,
  description: string,
  scope?: string
): Error & { statusCode: number, code: string, headers: Record<string, string> } {
  const params = [`realm=${quote(realm)}`]
  if (code !== undefined) params.push(`error=${quote(code)}`, `error_description=${quote(describe(description))}`)
  if (scope !== undefined) params.push(`scope=${quote(scope)}`)
  const error = new bearerErrors[code ?? 'missing'](description) as Error & {
    statusCode: number, code: string, headers: Record<string, string>
  }
  error.headers = { 'www-authenticate': 'Bearer ' + params.join(', ') }
  return error
}
