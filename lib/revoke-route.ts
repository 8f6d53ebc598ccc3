import type { FastifyInstance, FastifyRequest } from 'fastify'
import { oauthError } from './errors.js'
import type { EmitEvent } from './events.js'
import type { ApiDocs } from './openapi.js'
import type { ResolvedOptions } from './options.js'
import type { RefreshTokens } from './refresh.js'
import type { Revocation } from './revocation.js'
import type { AccessTokenClaims, TokenService } from './tokens.js'

export interface RevokeRouteContext {
  options: ResolvedOptions
  tokens: TokenService
  refresh: RefreshTokens | undefined
  revocation: Revocation
  emit: EmitEvent
  docs: ApiDocs
}

/** What the token endpoint lends the revocation endpoint, which lives in the same scope. */
export interface EndpointHelpers {
  readForm: (body: unknown) => Record<string, string>
  authenticateClient: (request: FastifyRequest, form: Record<string, string>) => Promise<string>
  /** Answers 405 with `Allow: POST` to the other methods on `path`. */
  refuseOtherMethods: (path: string, endpoint: string) => void
}

/**
 * The revocation endpoint (RFC 7009). It is registered inside the token endpoint's encapsulated
 * scope, so it shares its form parser, its per-IP limit, its client authentication and its
 * RFC 6749 §5.2 error handler.
 */
export function revokeRoute (context: RevokeRouteContext): (fastify: FastifyInstance, helpers: EndpointHelpers) => Promise<void> {
  const { options, tokens, refresh, revocation, emit, docs } = context

  async function revokeAccessToken (request: FastifyRequest, token: string, clientId: string): Promise<void> {
    let claims: AccessTokenClaims
    try {
      claims = await tokens.verify(token)
    } catch {
      // RFC 7009 §2.2: an invalid, expired or unknown token is answered 200 all the same.
      return
    }
    if (claims.client_id !== clientId) throw oauthError('unauthorized_client', 'The token was not issued to this client')
    if (options.revocableAccessTokens === false) {
      // RFC 7009 §2.2.1: this server cannot revoke access tokens; they expire on their own.
      throw oauthError('unsupported_token_type', 'Access tokens cannot be revoked; they expire on their own')
    }
    await revocation.revokeAccessToken(claims)
    emit(request, { type: 'token.revoked', clientId, reason: 'access_token' })
  }

  return async function registerRevoke (fastify, { readForm, authenticateClient, refuseOtherMethods }) {
    const url = options.revocationPath
    // RFC 7009 §2.1: the revocation endpoint takes POST only.
    refuseOtherMethods(url, 'revocation')

    fastify.post(url, { bodyLimit: options.bodyLimit, config: docs.revokeRoute }, async function revoke (request, reply) {
      const form = readForm(request.body)
      const clientId = await authenticateClient(request, form)
      const token = form.token
      if (token === undefined) throw oauthError('invalid_request', 'The "token" parameter is required')
      // RFC 7009 §2.1: `token_type_hint` may be ignored when the type can be told from the token,
      // as it can here (a refresh token never parses as a JWT), and a wrong hint must not stop
      // the revocation.
      if (refresh === undefined || !await refresh.revoke(request, token, clientId)) {
        await revokeAccessToken(request, token, clientId)
      }
      reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
      return reply.code(200).send()
    })
  }
}
