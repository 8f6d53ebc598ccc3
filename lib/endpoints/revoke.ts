import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { BrowserSessions } from '../browser/browser-sessions.js'
import { oauthError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import type { RouteDocConfig } from '../openapi.js'
import type { AccessTokenClaims } from '../tokens/claims.js'
import { isRefreshToken, type RefreshTokens } from '../tokens/refresh-tokens.js'
import type { Revocation } from '../tokens/revocation.js'
import type { TokenService } from '../tokens/token-service.js'
import type { AuthenticateClient } from './client-auth.js'
import { refuseOtherMethods } from './endpoint-scope.js'
import { readForm } from './form.js'

/** What the revocation endpoint is built from. */
export interface RevokeEndpointDeps {
  path: string
  bodyLimit: number
  authenticateClient: AuthenticateClient
  tokens: TokenService
  /** Present when refresh tokens are on. */
  refreshTokens: RefreshTokens | undefined
  /** Its `revokeAccessToken` is used only when access tokens are revocable. */
  revocation: Revocation
  revocableAccessTokens: boolean
  emit: EmitEvent
  docs: RouteDocConfig
  /** Present when browser sessions are on. */
  sessions: BrowserSessions | undefined
}

/**
 * The revocation endpoint (RFC 7009), in the scope `setUpEndpointScope` prepared, beside the
 * token endpoint: the same form rules, per-IP limit, client authentication and error answers.
 */
export function revokeEndpoint (fastify: FastifyInstance, deps: RevokeEndpointDeps): void {
  const { path, bodyLimit, authenticateClient, tokens, refreshTokens, revocation, revocableAccessTokens, emit, docs, sessions } = deps

  async function revokeRefreshToken (request: FastifyRequest, token: string, clientId: string): Promise<void> {
    const found = await refreshTokens?.find(token)
    // RFC 7009 §2.2: an unknown token is answered 200 all the same. A made-up secret under a real
    // family's name is unknown too (`find` checks that the family issued it): it ends nothing.
    if (found === undefined) return
    const { family } = found
    // RFC 7009 §2.1: the token must have been issued to the client that asks.
    if (family.clientId !== clientId) throw oauthError('unauthorized_client', 'The token was not issued to this client')
    await refreshTokens?.end(family)
    emit(request, { type: 'token.revoked', username: family.username, clientId, reason: 'refresh_token' })
  }

  async function revokeAccessToken (request: FastifyRequest, token: string, clientId: string): Promise<void> {
    let claims: AccessTokenClaims
    try {
      claims = await tokens.verify(token)
    } catch {
      // RFC 7009 §2.2: an invalid, expired or unknown token is answered 200 all the same.
      return
    }
    if (claims.client_id !== clientId) throw oauthError('unauthorized_client', 'The token was not issued to this client')
    if (!revocableAccessTokens) {
      // RFC 7009 §2.2.1: this server cannot revoke access tokens; they expire on their own.
      throw oauthError('unsupported_token_type', 'Access tokens cannot be revoked; they expire on their own')
    }
    await revocation.revokeAccessToken(claims)
    emit(request, { type: 'token.revoked', clientId, reason: 'access_token' })
  }

  // RFC 7009 §2.1: the revocation endpoint takes POST only.
  refuseOtherMethods(fastify, path, 'revocation')

  fastify.post(path, { bodyLimit, config: docs }, async function revoke (request, reply) {
    const form = readForm(request.body)
    // A browser session's logout presents the cookie's token, CSRF-checked, and clears the cookie.
    const presented = sessions?.present(request, form.token, true)
    const token = presented === undefined ? form.token : presented.token
    const clientId = await authenticateClient(request, form)
    // RFC 7009 §2.2: a browser with no session left to end is answered as for an unknown token.
    if (token === undefined && presented?.browser !== true) throw oauthError('invalid_request', "The 'token' parameter is required")
    // RFC 7009 §2.1: `token_type_hint` may be ignored when the type can be told from the token,
    // as it can here (a refresh token never parses as a JWT), and a wrong hint must not stop
    // the revocation.
    if (token !== undefined) {
      if (refreshTokens !== undefined && isRefreshToken(token)) await revokeRefreshToken(request, token, clientId)
      else await revokeAccessToken(request, token, clientId)
    }
    reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
    // The cookie goes whenever the logout relied on it, or found none.
    if (presented?.browser === true && (presented.fromCookie || token === undefined)) (sessions as BrowserSessions).clear(reply)
    // RFC 7009 §2.2: the client ignores the body, but clients that insist on a JSON answer (as
    // simple-oauth2 does by default) refuse an empty one: an empty JSON object satisfies both.
    return reply.code(200).send({})
  })
}
