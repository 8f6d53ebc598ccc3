import type { FastifyRequest } from 'fastify'
import type { UserRecord } from '../options/types.js'
import type { CustomClaims } from '../tokens/claims.js'
import type { Revocation } from '../tokens/revocation.js'
import type { RefreshTokens } from '../tokens/refresh-tokens.js'
import type { TokenService } from '../tokens/token-service.js'
import type { Grant, TokenResponse } from './grant.js'

/** Signs the tokens for what a grant decided, and builds the answer. */
export type IssueTokens = (request: FastifyRequest, grant: Grant) => Promise<TokenResponse>

/** What issuing tokens depends on. */
export interface TokenIssuerDeps {
  tokens: TokenService
  revocation: Revocation
  /** Present when refresh tokens are on. */
  refreshTokens: RefreshTokens | undefined
  /** The host's extra claims for a user (the `claims` option). */
  claims: ((user: UserRecord, request: FastifyRequest) => CustomClaims | Promise<CustomClaims>) | undefined
}

/** The one step that every grant ends with: the access token, the refresh token, the answer. */
export function createTokenIssuer ({ tokens, revocation, refreshTokens, claims }: TokenIssuerDeps): IssueTokens {
  return async function issue (request, grant) {
    const { sub, clientId, scope, requested } = grant
    // The host's own claims are computed from the user as they are now, on every grant for a user.
    const extra = grant.kind === 'client' ? undefined : await claims?.(grant.user, request)
    await revocation.beforeSign(sub)
    const { token, expiresIn } = tokens.sign({ sub, scope, clientId, extra })
    const body: TokenResponse = { access_token: token, token_type: 'Bearer', expires_in: expiresIn }
    // RFC 6749 §5.1: scope is required in the answer when it differs from the request (narrowed
    // to nothing, it is the empty string: the client must not think it got what it asked).
    if (requested === undefined ? scope.length > 0 : scope.length !== requested.length) body.scope = scope.join(' ')
    // RFC 6749 §4.4.3: no refresh token for a client's own token.
    if (grant.kind === 'client') return body
    const refreshToken = grant.refreshToken ?? await refreshTokens?.start({ sub, username: grant.username, clientId, scope })
    if (refreshToken !== undefined) body.refresh_token = refreshToken
    return body
  }
}
