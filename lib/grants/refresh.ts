import type { FastifyRequest } from 'fastify'
import { oauthError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import type { FastifyTokenAuthOptions, UserRecord } from '../options/types.js'
import { parseScope } from '../scope.js'
import type { RefreshFamily } from '../stores/types.js'
import type { RefreshTokens } from '../tokens/refresh-tokens.js'
import type { GrantHandler } from './grant.js'
import type { IssueTokens } from './issue.js'

// One description for every refresh failure, so nothing tells an unknown token from a revoked one.
const ONE_FAILURE = 'The refresh token is invalid, expired or revoked'

/** What the refresh grant is built from. */
export interface RefreshGrantDeps {
  refreshTokens: RefreshTokens
  findUser: NonNullable<FastifyTokenAuthOptions['findUser']>
  issue: IssueTokens
  emit: EmitEvent
}

/**
 * The refresh grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): each refresh replaces the
 * token, and presenting a replaced one revokes the whole family.
 */
export function createRefreshGrant ({ refreshTokens, findUser, issue, emit }: RefreshGrantDeps): GrantHandler {
  function failure (request: FastifyRequest, reason: string, family?: RefreshFamily): never {
    emit(request, {
      type: reason === 'reuse' ? 'refresh.reuse' : 'refresh.failure',
      ...(family === undefined ? {} : { username: family.username, clientId: family.clientId }),
      reason
    })
    throw oauthError('invalid_grant', ONE_FAILURE)
  }

  /**
   * The checks a current token must pass before it is rotated; none of them spends it. Returns
   * the scopes to grant and the user as they are now.
   */
  async function admit (request: FastifyRequest, family: RefreshFamily, clientId: string, requested: string[] | undefined): Promise<{ scope: string[], user: UserRecord }> {
    // RFC 6749 §10.4: a refresh token is bound to the client it was issued to.
    if (family.clientId !== clientId) return failure(request, 'client_mismatch', family)
    // RFC 6749 §6: the scope may narrow, never include one not originally granted.
    if (requested !== undefined && !requested.every((s) => family.scope.includes(s))) {
      throw oauthError('invalid_scope', 'The requested scope exceeds the scope originally granted')
    }
    // The user may have been disabled or removed since the login; a new account that took the
    // username (another `sub`) does not inherit the old one's sessions.
    const user = await findUser(family.username, request)
    if (user == null || user.disabled === true || String(user.id ?? user.username) !== family.sub) {
      await refreshTokens.end(family)
      return failure(request, user?.disabled === true ? 'disabled' : 'unknown_user', family)
    }
    // Scopes the user has lost since the login are not granted again.
    const allowed = user.scopes ?? []
    if (requested !== undefined && !requested.every((s) => allowed.includes(s))) {
      throw oauthError('invalid_scope', 'The requested scope exceeds what this user may be granted')
    }
    return { scope: (requested ?? family.scope).filter((s) => allowed.includes(s)), user }
  }

  return async function refreshGrant (request, form, clientId) {
    const requested = parseScope(form.scope)
    const token = form.refresh_token
    if (token === undefined) throw oauthError('invalid_request', 'The "refresh_token" parameter is required')
    const found = await refreshTokens.find(token)
    if (found === undefined) return failure(request, 'unknown')
    const { family } = found
    // A token that is not the current one goes straight to the store's atomic step, which
    // revokes the family (RFC 9700 §4.14.2).
    const admitted = found.current ? await admit(request, family, clientId, requested) : undefined

    const { outcome, next } = await refreshTokens.rotate(found)
    // Replaced already, maybe by a request racing this one: two parties hold the family's
    // tokens, and the store has revoked it.
    if (outcome === 'reused') return failure(request, 'reuse', family)
    if (outcome === 'invalid') return failure(request, 'unknown', family)

    // Only the current token gets this far (any other is reuse), and it was admitted above.
    const { user, scope } = admitted as { user: UserRecord, scope: string[] }
    const body = await issue(request, { user, username: family.username, sub: family.sub, clientId, scope, requested, refreshToken: next })
    emit(request, { type: 'refresh.success', username: family.username, clientId })
    return body
  }
}
