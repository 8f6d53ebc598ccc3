import type { FastifyRequest } from 'fastify'
import { createHash, randomBytes } from 'node:crypto'
import { oauthError } from './errors.js'
import type { EmitEvent } from './events.js'
import type { ResolvedOptions, UserRecord } from './options.js'
import { userKeyOf, type Revocation } from './revocation.js'
import type { AuthStore, RefreshFamily } from './stores/types.js'
import type { TokenService } from './tokens.js'
import type { TokenResponse } from './token-route.js'

export interface RefreshContext {
  options: ResolvedOptions
  store: AuthStore
  tokens: TokenService
  revocation: Revocation
  emit: EmitEvent
}

/** A refresh token taken apart: where its family lives, and the hash the store compares. */
interface ParsedToken {
  userKey: string
  familyId: string
  hash: string
}

export interface RefreshTokens {
  /** Starts a family for a fresh login and returns its first refresh token. */
  start: (grant: { sub: string, username: string, clientId: string, scope: readonly string[] }) => Promise<string>
  /** The refresh grant (RFC 6749 §6), for an already authenticated client. */
  grant: (request: FastifyRequest, token: string | undefined, clientId: string, requested: string[] | undefined) => Promise<TokenResponse>
  /**
   * Revocation of a refresh token (RFC 7009 §2.1): ends its family. Resolves false when
   * `token` is not shaped like one of ours, true otherwise (revoked, or unknown: both are 200).
   */
  revoke: (request: FastifyRequest, token: string, clientId: string) => Promise<boolean>
}

// userKey . familyId (128 random bits) . secret (256 random bits), all base64url. The client
// treats it as opaque; the first two parts only tell the store where to look, and never
// suffice: the store compares a hash of the whole token.
const TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/
// One description for every refresh failure, so nothing tells an unknown token from a revoked one.
const ONE_FAILURE = 'The refresh token is invalid, expired or revoked'

/**
 * Refresh tokens are high-entropy random values, so one round of SHA-256 is the right hash:
 * nothing can be guessed, and a slow hash would only cost every refresh.
 */
function hashOf (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

function parse (token: string): ParsedToken | undefined {
  const match = TOKEN.exec(token)
  if (match === null) return undefined
  return { userKey: match[1] as string, familyId: match[2] as string, hash: hashOf(token) }
}

function newToken (userKey: string, familyId: string): string {
  return `${userKey}.${familyId}.${randomBytes(32).toString('base64url')}`
}

/**
 * Refresh tokens with rotation (RFC 6749 §6, RFC 9700 §4.14.2): each refresh replaces the
 * token, and presenting a replaced one revokes the whole family, as it means two parties hold
 * it. Families are bound to the user, the client and the scopes granted at login.
 */
export function createRefreshTokens (context: RefreshContext): RefreshTokens {
  const { options, store, tokens, revocation, emit } = context
  const { idleTtl, absoluteTtl } = options.refreshTokens as { idleTtl: number, absoluteTtl: number }
  const idleMs = idleTtl * 1000

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
   * the scopes to grant.
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
    const user = await options.findUser?.(family.username, request)
    if (user == null || user.disabled === true || String(user.id ?? user.username) !== family.sub) {
      await store.revokeRefreshFamily(family.userKey, family.id)
      return failure(request, user?.disabled === true ? 'disabled' : 'unknown_user', family)
    }
    // Scopes the user has lost since the login are not granted again.
    const allowed = user.scopes ?? []
    if (requested !== undefined && !requested.every((s) => allowed.includes(s))) {
      throw oauthError('invalid_scope', 'The requested scope exceeds what this user may be granted')
    }
    return { scope: (requested ?? family.scope).filter((s) => allowed.includes(s)), user }
  }

  return {
    async start ({ sub, username, clientId, scope }) {
      const now = Date.now()
      const userKey = userKeyOf(sub)
      const id = randomBytes(16).toString('base64url')
      const token = newToken(userKey, id)
      const family: RefreshFamily = { id, userKey, sub, username, clientId, scope: [...scope], createdAt: now, expiresAt: now + absoluteTtl * 1000 }
      await store.createRefreshFamily(family, hashOf(token), idleMs, now)
      return token
    },

    async grant (request, token, clientId, requested) {
      if (token === undefined) throw oauthError('invalid_request', 'The "refresh_token" parameter is required')
      const parsed = parse(token)
      const lookup = parsed === undefined ? undefined : await store.getRefreshFamily(parsed.userKey, parsed.familyId, parsed.hash, Date.now())
      if (parsed === undefined || lookup === undefined) return failure(request, 'unknown')
      const { family } = lookup
      // A token that is not the current one goes straight to the store's atomic step, which
      // revokes the family (RFC 9700 §4.14.2).
      const admitted = lookup.current ? await admit(request, family, clientId, requested) : undefined
      const granted = admitted?.scope ?? []

      const next = newToken(family.userKey, family.id)
      const outcome = await store.rotateRefreshToken(family.userKey, family.id, parsed.hash, hashOf(next), idleMs, Date.now())
      // Replaced already, maybe by a request racing this one: two parties hold the family's
      // tokens, and the store has revoked it.
      if (outcome === 'reused') return failure(request, 'reuse', family)
      if (outcome === 'invalid') return failure(request, 'unknown', family)

      // The host's own claims are computed again, from the user as they are now. Only the
      // current token gets this far (any other is reuse), and it was admitted above.
      const extra = await options.claims?.((admitted as { user: UserRecord }).user, request)
      await revocation.beforeSign(family.sub)
      const { token: accessToken, expiresIn } = tokens.sign({ sub: family.sub, scope: granted, clientId, extra })
      emit(request, { type: 'refresh.success', username: family.username, clientId })
      const body: TokenResponse = { access_token: accessToken, token_type: 'Bearer', expires_in: expiresIn, refresh_token: next }
      // RFC 6749 §5.1: scope is required in the answer when it differs from the request.
      if (requested === undefined && granted.length > 0) body.scope = granted.join(' ')
      return body
    },

    async revoke (request, token, clientId) {
      const parsed = parse(token)
      if (parsed === undefined) return false
      const lookup = await store.getRefreshFamily(parsed.userKey, parsed.familyId, parsed.hash, Date.now())
      if (lookup === undefined) return true
      const { family } = lookup
      // RFC 7009 §2.1: the token must have been issued to the client that asks.
      if (family.clientId !== clientId) {
        throw oauthError('unauthorized_client', 'The token was not issued to this client')
      }
      await store.revokeRefreshFamily(family.userKey, family.id)
      emit(request, { type: 'token.revoked', username: family.username, clientId, reason: 'refresh_token' })
      return true
    }
  }
}
