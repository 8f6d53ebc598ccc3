import type { FastifyRequest } from 'fastify'
import type { FastifyTokenAuthOptions } from '../options/types.js'
import type { AuthStore } from '../stores/types.js'
import type { AccessTokenClaims } from './claims.js'
import { isRefreshToken, type RefreshTokens } from './refresh-tokens.js'
import { userScopes } from '../scope.js'
import { isRevoked } from './revocation.js'
import type { TokenService } from './token-service.js'
import { userKeyOf } from './user-key.js'

/** What RFC 7662 §2.2 says about an active token; the members the plugin knows. */
export interface ActiveToken {
  active: true
  scope?: string
  client_id: string
  /** Known for refresh tokens, whose session remembers the username the user logged in with. */
  username?: string
  /** `Bearer` for an access token (RFC 6749 §5.1), `refresh_token` for a refresh token. */
  token_type: 'Bearer' | 'refresh_token'
  exp: number
  iat: number
  nbf?: number
  sub: string
  aud?: string | string[]
  iss?: string
  jti: string
}

/** RFC 7662 §2.2: an inactive token gets `active: false` and nothing else, whatever the reason. */
export type Introspection = ActiveToken | { active: false }

/** Tells what a token is worth now, as `authenticate` and the refresh grant would judge it. */
export type Introspect = (request: FastifyRequest, token: string) => Promise<Introspection>

/** What introspection reads. */
export interface IntrospectorDeps {
  tokens: TokenService
  /** Present when refresh tokens are on. */
  refreshTokens: RefreshTokens | undefined
  store: AuthStore
  /** Whether `authenticate` checks access tokens against the store's revocations. */
  revocableAccessTokens: boolean
  findUser: NonNullable<FastifyTokenAuthOptions['findUser']>
  /** The `iss` of a refresh token's answer. */
  issuer: string | undefined
}

const INACTIVE = Object.freeze({ active: false as const })

/**
 * Token introspection (RFC 7662 §2.2). A token is active exactly when it would be accepted: an
 * access token that `authenticate` would let through, a refresh token the refresh grant would
 * take. Looking never changes anything: introspecting a replaced refresh token is not reuse.
 */
export function createIntrospector (deps: IntrospectorDeps): Introspect {
  const { tokens, refreshTokens, store, revocableAccessTokens, findUser, issuer } = deps
  const issuerClaim = issuer === undefined ? {} : { iss: issuer }

  async function accessToken (token: string): Promise<Introspection> {
    let claims: AccessTokenClaims
    try {
      claims = await tokens.verify(token)
    } catch {
      return INACTIVE
    }
    if (revocableAccessTokens) {
      // The state `authenticate` reads; a store that cannot answer is a 503, never "active".
      // An access token revoked by reuse of its family's refresh tokens (sid) or by "log out
      // everywhere" (its grant's epoch) introspects as inactive, as `authenticate` refuses it.
      const familyId = typeof claims.sid === 'string' ? claims.sid : undefined
      const state = await store.revocationState(userKeyOf(claims.sub), claims.jti, Date.now(), familyId)
      if (isRevoked(claims, state)) return INACTIVE
    }
    const { scope, client_id: clientId, exp, iat, nbf, sub, aud, iss, jti } = claims
    return {
      active: true,
      ...(scope === undefined ? {} : { scope }),
      client_id: clientId,
      token_type: 'Bearer',
      exp,
      iat,
      ...(nbf === undefined ? {} : { nbf }),
      sub,
      ...(aud === undefined ? {} : { aud }),
      ...(iss === undefined ? {} : { iss }),
      jti
    }
  }

  async function refreshToken (request: FastifyRequest, token: string, live: RefreshTokens): Promise<Introspection> {
    const found = await live.find(token)
    // A replaced token is not active: presenting it to the token endpoint would end the session.
    if (found === undefined || !found.current) return INACTIVE
    const { family } = found
    // The refresh grant's own checks on the user: gone, disabled, or another account under the name.
    const user = await findUser(family.username, request)
    if (user == null || user.disabled === true || String(user.id ?? user.username) !== family.sub) return INACTIVE
    const allowed = userScopes(user)
    const scope = family.scope.filter((s) => allowed.includes(s))
    return {
      active: true,
      ...(scope.length === 0 ? {} : { scope: scope.join(' ') }),
      client_id: family.clientId,
      username: family.username,
      token_type: 'refresh_token',
      // The session's absolute end; it ends sooner if left unused for the idle lifetime.
      exp: Math.floor(family.expiresAt / 1000),
      // The login that started the session.
      iat: Math.floor(family.createdAt / 1000),
      sub: family.sub,
      // No `aud`: a refresh token is for this server alone (RFC 6749 §1.5), never for the API
      // the audience names, so a resource server that checks `aud` refuses one presented to it.
      ...issuerClaim,
      // The store's hash of this very token: unique to it, and no use to anyone who reads it.
      jti: found.hash
    }
  }

  return async function introspect (request, token) {
    // A refresh token never parses as a JWT, so the shape tells the kind (RFC 7662 §2.1 lets the
    // hint be ignored).
    if (refreshTokens !== undefined && isRefreshToken(token)) return await refreshToken(request, token, refreshTokens)
    return await accessToken(token)
  }
}
