import type { FastifyReply, FastifyRequest } from 'fastify'
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
   * Read by a grant before it checks any credential: the revocation epoch, which the grant's
   * access token carries (`rev_epoch`) and its refresh family is created under.
   */
  epoch: () => Promise<number>
  /**
   * "Log out everywhere": ends every refresh family of the user, and denies every access token
   * whose grant read an earlier epoch. Once it has returned, no grant that began before can
   * hand out anything that works, however close in time (RFC 9700 §4.14.2 leaves "how" open;
   * see the epoch in stores/types.ts).
   */
  revokeUser: (userId: string | number) => Promise<void>
  /** Denies one access token until it expires. */
  revokeAccessToken: (claims: AccessTokenClaims) => Promise<void>
  /**
   * How long, in milliseconds, the reuse of a family's refresh token denies the family's access
   * tokens: as long as one issued just before may live. 0 without revocable access tokens.
   */
  familyDenyMs: number
  /**
   * For `authenticate`, with revocable access tokens (`undefined` without): throws a 401 for a
   * revoked token, a 503 when the store cannot tell (unless failing open). It answers with a
   * promise only when the store does.
   */
  check: ClaimsCheck | undefined
}

/**
 * Whether a verified token is revoked by what the store knows.
 *
 * The user's bound is compared with the epoch the token's grant began in, both read from the
 * store, so no clock decides it. A token without `rev_epoch` (issued by a version of the plugin
 * from before it, or by another issuer) is judged by its `iat`, at the resolution of a second and
 * erring towards refusal: a token issued in the second of the revocation is refused.
 */
export function isRevoked (claims: AccessTokenClaims, state: RevocationState): boolean {
  if (state.jtiDenied || state.familyDenied) return true
  return typeof claims.rev_epoch === 'number' ? claims.rev_epoch < state.revokedBefore : claims.iat * 1000 < state.revokedBefore
}

/** Revocation of access tokens (`revocableAccessTokens`) and "log out everywhere", on top of the store. */
export function createRevocation ({ store, revocableAccessTokens, accessTokenTtl, clockTolerance, realm, emit }: RevocationDeps): Revocation {
  const failOpen = revocableAccessTokens !== false && revocableAccessTokens.failOpen
  // A bound must outlive every access token issued before it.
  const boundTtlMs = (accessTokenTtl + clockTolerance + 1) * 1000

  const revocation: Revocation = {
    // Read on every grant, even with neither refresh tokens nor revocable access tokens on here:
    // an instance that only verifies, sharing the store, may have them on.
    epoch: async () => await store.revocationEpoch(),

    async revokeUser (userId) {
      await store.revokeUser(userKeyOf(String(userId)), boundTtlMs, Date.now())
    },

    async revokeAccessToken (claims) {
      const now = Date.now()
      const ttlMs = (claims.exp + clockTolerance) * 1000 - now
      if (ttlMs > 0) await store.revokeAccessToken(userKeyOf(claims.sub), claims.jti, ttlMs, now)
    },

    familyDenyMs: revocableAccessTokens === false ? 0 : boundTtlMs,

    check: revocableAccessTokens === false
      ? undefined
      : (request, reply, claims) => {
          let state
          try {
            const familyId = typeof claims.sid === 'string' ? claims.sid : undefined
            state = store.revocationState(userKeyOf(claims.sub), claims.jti, Date.now(), familyId)
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
    if (isRevoked(claims, state)) {
      emit(request, { type: 'token.rejected', reason: 'revoked' })
      const error = bearerError(realm, 'invalid_token', 'The access token was revoked')
      reply.headers(error.headers)
      throw error
    }
  }

  return revocation
}
