import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { bearerError, InvalidOptionError, KeysUnavailableError } from './errors.js'
import type { EmitEvent } from './logging/events.js'
import { authorizationHeader, DUPLICATE } from './util/authorization-header.js'
import { isPromise } from './util/is-promise.js'
import { SCOPE_TOKEN, scopeList } from './scope.js'
import type { AccessTokenClaims, AuthUser } from './tokens/claims.js'
import { TokenRejectedError, type TokenService } from './tokens/token-service.js'
import type { CachingTokenService } from './tokens/verify-cache.js'
import type { ClaimsCheck } from './tokens/revocation.js'

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. The scheme is whatever precedes the
// first whitespace, so "Bearer<TAB>token" or a bare "Bearer" is a malformed Bearer header
// (400 invalid_request), not a request without credentials.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
const BEARER = /^(\S+) *(.*)$/s
// A compact JWS far past this is no token we issued; refuse it before any parsing.
const MAX_TOKEN_LENGTH = 8192

export interface Authenticator {
  authenticate: preHandlerAsyncHookHandler
  requireScopes: (...scopes: string[]) => preHandlerAsyncHookHandler
}

/** The user of an authenticated request. A class, so that `requireScopes` can tell one `authenticate` made. */
class BearerUser implements AuthUser {
  sub: string
  scope: readonly string[]
  clientId: string
  claims: AccessTokenClaims
  constructor (claims: AccessTokenClaims) {
    this.sub = claims.sub
    this.scope = scopeList(claims.scope)
    this.clientId = claims.client_id
    this.claims = claims
  }
}

type Done = (error?: Error) => void

/** What `authenticate` is built from. */
export interface AuthenticatorDeps {
  /** With a cache, a token seen before is recalled rather than verified again. */
  tokens: TokenService | CachingTokenService
  /** The realm of every `WWW-Authenticate` challenge. */
  realm: string
  emit: EmitEvent
  /** Revocation, when access tokens are revocable. */
  check: ClaimsCheck | undefined
}

export function createAuthenticator ({ tokens, realm, emit, check }: AuthenticatorDeps): Authenticator {
  const recall = 'recall' in tokens ? tokens.recall : undefined

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

  /**
   * What follows "Bearer" in the request's one `Authorization` header; throws the answer when
   * there is none or more than one. Its syntax is not checked yet (see `run`).
   */
  function bearerCredentials (request: FastifyRequest, reply: FastifyReply): string {
    const header = authorizationHeader(request.raw.rawHeaders)
    if (header === DUPLICATE) {
      emit(request, { type: 'token.rejected', reason: 'duplicate_header' })
      throw challenge(reply, realm, 'invalid_request', 'Only one Authorization header is allowed')
    }
    // What nearly every client sends, taken without the regular expression below (same answer).
    if (header !== undefined && header.startsWith('Bearer ') && header.charCodeAt(7) !== 0x20) return header.slice(7)
    const parts = header === undefined ? null : BEARER.exec(header)
    // RFC 6750 §3.1: no credentials, or credentials of another scheme, get a challenge
    // without an error code. The scheme is case-insensitive (RFC 9110 §11.1).
    if (parts === null || (parts[1] as string).toLowerCase() !== 'bearer') {
      throw challenge(reply, realm, undefined, 'Authentication required')
    }
    return parts[2] as string
  }

  /** The answer to a token that did not verify. */
  function refusal (request: FastifyRequest, reply: FastifyReply, error: unknown): Error {
    const { reason, retryAfter } = error as TokenRejectedError
    emit(request, { type: 'token.rejected', reason })
    if (reason === 'keys_unavailable') {
      // Not the token's fault, so no challenge: a client that retries later may well succeed.
      reply.header('retry-after', String(retryAfter))
      return new KeysUnavailableError((error as Error).message)
    }
    return challenge(reply, realm, 'invalid_token', (error as Error).message)
  }

  function admit (request: FastifyRequest, claims: AccessTokenClaims): void {
    request.user = new BearerUser(claims)
  }

  /** Admits the request once `check` (revocation) agrees; a promise only when the check has to wait. */
  function accept (request: FastifyRequest, reply: FastifyReply, claims: AccessTokenClaims): Promise<void> | undefined {
    const checking = check?.(request, reply, claims)
    if (isPromise(checking)) return checking.then(() => { admit(request, claims) })
    admit(request, claims)
    return undefined
  }

  /**
   * The whole check. It returns a promise only when it has to wait (a key from a JWKS, a store
   * across the network); a token seen before, with the memory store, is settled at once.
   */
  function run (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    const token = bearerCredentials(request, reply)
    // A token the cache recalls has verified before, and fast-jwt's decoder admits only
    // base64url segments (RFC 7515 §2), all of them b64token characters: only a token not seen
    // before needs the RFC 6750 §2.1 syntax check, which costs as much as the recall itself.
    const known = recall?.(token)
    if (known !== undefined) return accept(request, reply, known)
    if (!B64TOKEN.test(token)) {
      emit(request, { type: 'token.rejected', reason: 'malformed_header' })
      throw challenge(reply, realm, 'invalid_request', "The Authorization header is not 'Bearer <token>'")
    }
    let claims: AccessTokenClaims | Promise<AccessTokenClaims>
    try {
      if (token.length > MAX_TOKEN_LENGTH) throw new TokenRejectedError('invalid')
      claims = tokens.verify(token)
    } catch (error) {
      throw refusal(request, reply, error)
    }
    if (!isPromise(claims)) return accept(request, reply, claims)
    return claims.then(
      (verified) => accept(request, reply, verified),
      (error: unknown) => { throw refusal(request, reply, error) })
  }

  /**
   * Called by Fastify as a hook, it answers through `done`, at once when nothing had to be
   * waited for: an async hook costs every authenticated request a promise and a turn of the
   * microtask queue. Called by a host's own code with `(request, reply)`, it returns a promise.
   */
  function authenticate (this: unknown, request: FastifyRequest, reply: FastifyReply, done?: Done): Promise<void> | undefined {
    let pending: Promise<void> | undefined
    try {
      pending = run(request, reply)
    } catch (error) {
      if (done === undefined) return Promise.reject(error)
      done(error as Error)
      return undefined
    }
    if (done === undefined) return pending ?? Promise.resolve()
    if (pending === undefined) done()
    else pending.then(() => { done() }, done)
    return undefined
  }

  function requireScopes (...scopes: string[]): preHandlerAsyncHookHandler {
    if (scopes.length === 0 || !scopes.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s))) {
      throw new InvalidOptionError('requireScopes', 'takes one or more scope names (RFC 6749 §3.3 scope-tokens)')
    }
    const needed = scopes.join(' ')
    return async function checkScopes (request, reply) {
      // Works on its own or after `authenticate` in the same preHandler list.
      if (!(request.user instanceof BearerUser)) await authenticate(request, reply)
      const granted = request.user.scope
      if (!scopes.every((s) => granted.includes(s))) {
        emit(request, { type: 'token.rejected', reason: 'insufficient_scope' })
        // RFC 6750 §3.1: 403 with the scope the resource needs.
        throw challenge(reply, realm, 'insufficient_scope', 'The access token lacks a required scope', needed)
      }
    }
  }

  // Typed as the async hook it is to a host's code (two arguments, a promise back).
  return { authenticate: authenticate as preHandlerAsyncHookHandler, requireScopes }
}
