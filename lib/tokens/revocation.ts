import type { FastifyReply, FastifyRequest } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { bearerError, StoreUnavailableError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import type { AuthStore, RevocationState } from '../stores/types.js'
import type { AccessTokenClaims } from './claims.js'
import { isPromise } from '../util/is-promise.js'
import { userKeyOf } from './user-key.js'

/**
 * A further check of verified claims (revocation); throws, or rejects, to refuse the request.
 * It returns a promise only when it had to wait for something (a store across the network).
 */
export type ClaimsCheck = (request: FastifyRequest, reply: FastifyReply, claims: AccessTokenClaims) => void | Promise<void>

/** What revocation is built from. */
export interface RevocationDeps {
  store: AuthStore
  /** `false` when access tokens are not revocable: only refresh families end then. */
  revocableAccessTokens: { failOpen: boolean } | false
  /** Seconds. */
  accessTokenTtl: number
  /** Seconds. */
  clockTolerance: number
  realm: string
  emit: EmitEvent
}

export interface Revocation {
  /**
   * Before an access token is signed for `sub`: waits out a revocation bound set within the
   * current second. `iat` has one-second resolution (RFC 7519 §2 NumericDate), so a token
   * signed in the same second as `revokeUserTokens` would otherwise be rejected by it.
   */
  beforeSign: (sub: string) => Promise<void>
  /** Ends every refresh family of the user, and rejects their access tokens issued until now. */
  revokeUser: (userId: string | number) => Promise<void>
  /** Denies one access token until it expires. */
  revokeAccessToken: (claims: AccessTokenClaims) => Promise<void>
  /**
   * For `authenticate`, with revocable access tokens (`undefined` without): throws a 401 for a
   * revoked token, a 503 when the store cannot tell (unless failing open). It answers with a
   * promise only when the store does.
   */
  check: ClaimsCheck | undefined
}

/** Revocation of access tokens (`revocableAccessTokens`) and "log out everywhere", on top of the store. */
export function createRevocation ({ store, revocableAccessTokens, accessTokenTtl, clockTolerance, realm, emit }: RevocationDeps): Revocation {
  const failOpen = revocableAccessTokens !== false && revocableAccessTokens.failOpen
  // A bound must outlive every access token issued before it.
  const boundTtlMs = (accessTokenTtl + clockTolerance + 1) * 1000

  const revocation: Revocation = {
    async beforeSign (sub) {
      if (revocableAccessTokens === false) return
      const { revokedBefore } = await store.revocationState(userKeyOf(sub), undefined, Date.now())
      for (let wait = revokedBefore * 1000 - Date.now(); wait > 0; wait = revokedBefore * 1000 - Date.now()) await sleep(wait)
    },

    async revokeUser (userId) {
      const now = Date.now()
      // Tokens with iat below the next whole second are revoked: that covers every one issued until now.
      await store.revokeUser(userKeyOf(String(userId)), Math.ceil(now / 1000), boundTtlMs, now)
    },

    async revokeAccessToken (claims) {
      const now = Date.now()
      const ttlMs = (claims.exp + clockTolerance) * 1000 - now
      if (ttlMs > 0) await store.revokeAccessToken(userKeyOf(claims.sub), claims.jti, ttlMs, now)
    },

    check: revocableAccessTokens === false
      ? undefined
      : (request, reply, claims) => {
          let state
          try {
            state = store.revocationState(userKeyOf(claims.sub), claims.jti, Date.now())
          } catch (error) {
            unavailable(request, reply, error)
            return
          }
          if (!isPromise(state)) return judge(request, reply, claims, state)
          return state.then((answer) => { judge(request, reply, claims, answer) }, (error: unknown) => { unavailable(request, reply, error) })
        }
  }

  /** The store could not answer: 503, unless the host chose to fail open. */
  function unavailable (request: FastifyRequest, reply: FastifyReply, error: unknown): void {
    request.log.error({ err: error }, 'revocation check failed: the store is unavailable')
    if (failOpen) return
    // Fail closed: without the store, a revoked token cannot be told from a good one.
    reply.header('retry-after', '1')
    throw new StoreUnavailableError()
  }

  function judge (request: FastifyRequest, reply: FastifyReply, claims: AccessTokenClaims, state: RevocationState): void {
    if (state.jtiDenied || claims.iat < state.revokedBefore) {
      emit(request, { type: 'token.rejected', reason: 'revoked' })
      const error = bearerError(realm, 'invalid_token', 'The access token was revoked')
      reply.headers(error.headers)
      throw error
    }
  }

  return revocation
}
