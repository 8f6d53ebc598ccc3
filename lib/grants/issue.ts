import type { FastifyRequest } from 'fastify'
import { oauthError } from '../errors.js'
import type { UserRecord } from '../options/types.js'
import type { CustomClaims } from '../tokens/claims.js'
import type { NewFamily, RefreshTokens } from '../tokens/refresh-tokens.js'
import type { TokenService } from '../tokens/token-service.js'
import type { Grant, Issued, TokenResponse } from './grant.js'

/** Signs the tokens for what a grant decided, and builds the answer. */
export type IssueTokens = (request: FastifyRequest, grant: Grant) => Promise<Issued>

/** What issuing tokens depends on. */
export interface TokenIssuerDeps {
  tokens: TokenService
  /** Present when refresh tokens are on. */
  refreshTokens: RefreshTokens | undefined
  /** The host's extra claims for a user (the `claims` option). */
  claims: ((user: UserRecord, request: FastifyRequest) => CustomClaims | Promise<CustomClaims>) | undefined
}

/** The one step that every grant ends with: the access token, the refresh token, the answer. */
export function createTokenIssuer ({ tokens, refreshTokens, claims }: TokenIssuerDeps): IssueTokens {
  return async function issue (request, grant) {
    const { sub, clientId, scope, requested } = grant
    // The host's own claims are computed from the user as they are now, on every grant for a user.
    const extra = grant.kind === 'client' ? undefined : await claims?.(grant.user, request)
    // A user's access token names its family, so that reuse of the family's refresh tokens can
    // deny it, and the epoch its grant began in, so that a "log out everywhere" racing this grant
    // does. A client's own token has no family (RFC 6749 §4.4.3).
    const fresh = grant.kind === 'client' || grant.refresh !== undefined ? undefined : refreshTokens?.newFamily()
    const familyId = grant.kind === 'client' ? undefined : grant.refresh?.familyId ?? fresh?.id
    const epoch = grant.kind === 'client' ? undefined : grant.epoch
    const { token, expiresIn } = tokens.sign({ sub, scope, clientId, familyId, epoch, extra })
    const body: TokenResponse = { access_token: token, token_type: 'Bearer', expires_in: expiresIn }
    // RFC 6749 §5.1: scope is required in the answer when it differs from the request (narrowed
    // to nothing, it is the empty string: the client must not think it got what it asked).
    if (requested === undefined ? scope.length > 0 : scope.length !== requested.length) body.scope = scope.join(' ')
    // RFC 6749 §4.4.3: no refresh token for a client's own token.
    if (grant.kind === 'client') return { body }
    let refresh = grant.refresh
    if (refresh === undefined && refreshTokens !== undefined) {
      // Created only if the user was not revoked since `epoch`, atomically in the store: a login
      // whose password was checked before a "log out everywhere" returned starts no session.
      const started = await refreshTokens.start({ ...fresh as NewFamily, sub, username: grant.username, clientId, scope }, grant.epoch)
      if (started === undefined) throw oauthError('invalid_grant', 'The user\'s sessions were revoked during this request; log in again')
      refresh = { ...started, familyId: familyId as string }
    }
    if (refresh === undefined) return { body }
    body.refresh_token = refresh.token
    return { body, refreshExpiresAt: refresh.expiresAt }
  }
}
