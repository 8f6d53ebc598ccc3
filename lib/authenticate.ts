import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { bearerError, InvalidOptionError, KeysUnavailableError } from './errors.js'
import type { EmitEvent } from './events.js'
import { TokenRejectedError, type AccessTokenClaims, type TokenService } from './tokens.js'

/**
 * The claims your access tokens carry besides the standard ones (the plugin's `claims` option puts
 * them in). Empty until you add yours by declaration merging, which types `request.user.claims`
 * and the `claims` option alike:
 *
 * ```ts
 * declare module 'fastify-jwt-auth' {
 *   interface CustomClaims { tenant: string }
 * }
 * ```
 */
export interface CustomClaims {}

/**
 * What `authenticate` puts on `request.user`. `Claims` are the extra claims, `CustomClaims` by
 * default; pass another type to read a token of a different shape.
 */
export interface AuthUser<Claims extends object = CustomClaims> {
  /** The token's subject: the user's id, or username when the user has no id. */
  sub: string
  /** The granted scopes, as a list. */
  scope: readonly string[]
  /** The client the token was issued to. */
  clientId: string
  /** Every claim of the verified token. */
  claims: AccessTokenClaims & Claims
}

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. The scheme is whatever precedes the
// first whitespace, so "Bearer<TAB>token" or a bare "Bearer" is a malformed Bearer header
// (400 invalid_request), not a request without credentials.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
const BEARER = /^(\S+) *(.*)$/s
// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
export const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/
// A compact JWS far past this is no token we issued; refuse it before any parsing.
const MAX_TOKEN_LENGTH = 8192

export interface Authenticator {
  authenticate: preHandlerAsyncHookHandler
  requireScopes: (...scopes: string[]) => preHandlerAsyncHookHandler
}

/**
 * Every `Authorization` header of the request. Node keeps only the first in
 * `request.headers`; a second one is visible only in the raw list.
 */
function authorizationHeaders (rawHeaders: string[]): string[] {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    // The length first: this runs on every authenticated request, over every header.
    if (name.length === 13 && name.toLowerCase() === 'authorization') values.push(rawHeaders[i + 1] as string)
  }
  return values
}

/** A further check of verified claims (revocation); throws to refuse the request. */
export type ClaimsCheck = (request: FastifyRequest, reply: FastifyReply, claims: AccessTokenClaims) => Promise<void>

export function createAuthenticator (tokens: TokenService, realm: string, emit: EmitEvent, check?: ClaimsCheck): Authenticator {
  const authenticated = new WeakSet<FastifyRequest>()

  /**
   * A bearer error whose challenge is also set on the reply: Fastify applies `error.headers`
   * only in its default error handler, and a host's `setErrorHandler` must not lose the
   * `WWW-Authenticate` that RFC 6750 §3 requires.
   */
  function challenge (reply: FastifyReply, ...args: Parameters<typeof bearerError>): ReturnType<typeof bearerError> {
    const error = bearerError(...args)
    reply.headers(error.headers)
    return error
  }

  async function authenticate (this: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const headers = authorizationHeaders(request.raw.rawHeaders)
    if (headers.length > 1) {
      emit(request, { type: 'token.rejected', reason: 'duplicate_header' })
      throw challenge(reply, realm, 'invalid_request', 'Only one Authorization header is allowed')
    }
    const parts = headers.length === 0 ? null : BEARER.exec(headers[0] as string)
    // RFC 6750 §3.1: no credentials, or credentials of another scheme, get a challenge
    // without an error code. The scheme is case-insensitive (RFC 9110 §11.1).
    if (parts === null || (parts[1] as string).toLowerCase() !== 'bearer') {
      throw challenge(reply, realm, undefined, 'Authentication required')
    }
    const token = parts[2] as string
    if (!B64TOKEN.test(token)) {
      emit(request, { type: 'token.rejected', reason: 'malformed_header' })
      throw challenge(reply, realm, 'invalid_request', 'The Authorization header is not "Bearer <token>"')
    }
    let claims: AccessTokenClaims
    try {
      if (token.length > MAX_TOKEN_LENGTH) throw new TokenRejectedError('invalid')
      claims = await tokens.verify(token)
    } catch (error) {
      const { reason, retryAfter } = error as TokenRejectedError
      emit(request, { type: 'token.rejected', reason })
      if (reason === 'keys_unavailable') {
        // Not the token's fault, so no challenge: a client that retries later may well succeed.
        reply.header('retry-after', String(retryAfter))
        throw new KeysUnavailableError((error as Error).message)
      }
      throw challenge(reply, realm, 'invalid_token', (error as Error).message)
    }
    await check?.(request, reply, claims)
    request.user = {
      sub: claims.sub,
      scope: claims.scope === undefined || claims.scope === '' ? [] : claims.scope.split(' '),
      clientId: claims.client_id,
      claims
    }
    authenticated.add(request)
  }

  function requireScopes (...scopes: string[]): preHandlerAsyncHookHandler {
    if (scopes.length === 0 || !scopes.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s))) {
      throw new InvalidOptionError('requireScopes', 'takes one or more scope names (RFC 6749 §3.3 scope-tokens)')
    }
    const needed = scopes.join(' ')
    return async function checkScopes (request, reply) {
      // Works on its own or after `authenticate` in the same preHandler list.
      if (!authenticated.has(request)) await authenticate(request, reply)
      const granted = request.user.scope
      if (!scopes.every((s) => granted.includes(s))) {
        emit(request, { type: 'token.rejected', reason: 'insufficient_scope' })
        // RFC 6750 §3.1: 403 with the scope the resource needs.
        throw challenge(reply, realm, 'insufficient_scope', 'The access token lacks a required scope', needed)
      }
    }
  }

  return { authenticate, requireScopes }
}
