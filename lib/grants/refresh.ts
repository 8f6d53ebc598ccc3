import type { FastifyRequest } from 'fastify'
import { oauthError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import type { FastifyTokenAuthOptions, UserRecord } from '../options/types.js'
import { parseScope, userScopes } from '../scope.js'
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
  /** The revocation epoch, read before the token is looked up (`Revocation.epoch`). */
  revocationEpoch: () => Promise<number>
  issue: IssueTokens
  emit: EmitEvent
}

/**
 * The refresh grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): each refresh replaces the
 * token, and presenting a replaced one revokes the whole family, unless it is the one the last
 * rotation replaced, presented again by the same client within the retry grace.
 */
export function createRefreshGrant ({ refreshTokens, findUser, revocationEpoch, issue, emit }: RefreshGrantDeps): GrantHandler {
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
    const allowed = userScopes(user)
    if (requested !== undefined && !requested.every((s) => allowed.includes(s))) {
      throw oauthError('invalid_scope', 'The requested scope exceeds what this user may be granted')
    }
    return { scope: (requested ?? family.scope).filter((s) => allowed.includes(s)), user }
  }

  return async function refreshGrant (request, form, clientId) {
    const requested = parseScope(form.scope)
    const token = form.refresh_token
    if (token === undefined) throw oauthError('invalid_request', "The 'refresh_token' parameter is required")
    // Before the token is looked up: a "log out everywhere" that returns after this read ends
    // whatever this refresh issues.
    const epoch = await revocationEpoch()
    // A token the family never issued (a made-up secret under a real family's name) is not
    // found: unknown, and it reaches no step that could end the family.
    const found = await refreshTokens.find(token)
    if (found === undefined) return failure(request, 'unknown')
    const { family } = found
    // The current token, or a retry of the last rotation. A retry is the client's only: the
    // previous token from another client is reuse, as it would be without the grace (RFC 6749
    // §10.4). Any other token, one the family issued and replaced, goes straight to the store's
    // atomic step, which revokes the family (RFC 9700 §4.14.2).
    const eligible = found.current || (found.previous && family.clientId === clientId)
    const admitted = eligible ? await admit(request, family, clientId, requested) : undefined

    // An eligible token may be a retry by the time the store sees it (a request racing this one
    // rotated it): that too is answered with a fresh pair, and the family keeps one live token.
    const { outcome, next } = await refreshTokens.rotate(found, eligible)
    // Replaced already, past the grace or by another client: two parties hold the family's
    // tokens, and the store has revoked it and denied its access tokens.
    if (outcome === 'reused') return failure(request, 'reuse', family)
    if (outcome === 'invalid') return failure(request, 'unknown', family)

    // Only an eligible token gets this far (any other is reuse), and it was admitted above.
    const { user, scope } = admitted as { user: UserRecord, scope: string[] }
    const issued = await issue(request, {
      user, username: family.username, sub: family.sub, clientId, scope, requested, epoch, refresh: { token: next, familyId: family.id, expiresAt: family.expiresAt }
    })
    emit(request, { type: 'refresh.success', username: family.username, clientId, ...(outcome === 'retried' ? { reason: 'retry' } : {}) })
    return issued
  }
}
