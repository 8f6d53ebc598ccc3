import type { FastifyRequest } from 'fastify'
import { oauthError, StoreFullError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import type { FastifyTokenAuthOptions, UserRecord } from '../options/types.js'
import type { PasswordHasher } from '../password/hasher.js'
import { bcryptMayHaveTruncated } from '../password/bcrypt.js'
import { LimiterFullError } from '../password/limiter.js'
import { parseScope, userScopes } from '../scope.js'
import { sourceOf } from '../throttle/keys.js'
import type { Device, LoginThrottle } from '../throttle/login-throttle.js'
import type { IssueTokens } from './issue.js'
import type { GrantHandler } from './grant.js'

// A username far past this is no account's: refused before anything is looked up.
const MAX_USERNAME_LENGTH = 256
const ONE_FAILURE = 'Invalid username or password'

/** What the password grant is built from. */
export interface PasswordGrantDeps {
  findUser: NonNullable<FastifyTokenAuthOptions['findUser']>
  onPasswordRehash: FastifyTokenAuthOptions['onPasswordRehash']
  passwords: PasswordHasher
  /** Longest password accepted, in characters. */
  maxPasswordLength: number
  throttle: LoginThrottle
  /** With device cookies on: the device of a browser login (`DeviceCookies.forLogin`). */
  deviceOf: ((request: FastifyRequest, username: string) => Device | undefined) | undefined
  /**
   * The scopes this server offers, when the host listed them (the `scopes` option, and every
   * scope a route requires through `requireScopes`); `undefined` when it did not.
   */
  offeredScopes: ReadonlySet<string> | undefined
  /** The revocation epoch, read before the user is looked up (`Revocation.epoch`). */
  revocationEpoch: () => Promise<number>
  issue: IssueTokens
  emit: EmitEvent
}

/**
 * The resource owner password credentials grant (RFC 6749 §4.3). Brute-force protection is a
 * MUST there (§4.3.2): every attempt is reserved in the login throttle before its password is
 * checked, and settled after.
 */
export function createPasswordGrant (deps: PasswordGrantDeps): GrantHandler {
  const { findUser, onPasswordRehash, passwords, maxPasswordLength, throttle, deviceOf, offeredScopes, revocationEpoch, issue, emit } = deps

  /** Hands a fresh hash to the host after the answer is on its way; a failure is only logged. */
  function rehash (request: FastifyRequest, user: UserRecord, password: string): void {
    passwords.hash(password)
      .then(async (newHash) => {
        await onPasswordRehash?.(user, newHash)
        emit(request, { type: 'password.rehashed', username: user.username })
      })
      .catch((error: unknown) => {
        request.log.warn({ err: error instanceof LimiterFullError ? undefined : error }, 'password rehash skipped')
      })
  }

  let toldNoHash = false
  /**
   * Once per instance: a record without a string `passwordHash` can never log in, which is right
   * for an account without a password, and a silent lockout of every user when records keep the
   * hash under another name (the FastAPI tutorial's `password`, `hashed_password`).
   */
  function noHash (request: FastifyRequest): void {
    if (toldNoHash) return
    toldNoHash = true
    request.log.warn('findUser returned a user record without a string `passwordHash`: that user cannot log in. ' +
      'If your records keep the hash under another name, map it (docs/migration-from-fastapi.md); this is logged once')
  }

  return async function passwordGrant (request, form, clientId) {
    const { username: rawUsername, password: rawPassword } = form
    if (rawUsername === undefined || rawPassword === undefined) {
      throw oauthError('invalid_request', "The 'username' and 'password' parameters are required")
    }
    // Cheap checks first: nothing reaches argon2 that could not be a real login.
    if (rawUsername.length > MAX_USERNAME_LENGTH) throw oauthError('invalid_request', 'The username is too long')
    if (rawPassword.length > maxPasswordLength) throw oauthError('invalid_request', 'The password is too long')
    const username = rawUsername.normalize('NFC')
    const requested = parseScope(form.scope)
    // Refused before any password is checked, so that the answer is the same for a right and a
    // wrong one: after a check, it would tell which it was (an oracle beside the throttle).
    if (requested !== undefined && offeredScopes !== undefined && !requested.every((s) => offeredScopes.has(s))) {
      emit(request, { type: 'login.failure', username, reason: 'invalid_scope' })
      throw oauthError('invalid_scope', 'The requested scope is not offered by this server')
    }

    const device = deviceOf?.(request, username)
    const reservation = await throttle(username, sourceOf(request), device)
    if (!('succeeded' in reservation)) {
      emit(request, { type: 'login.throttled', username, reason: reservation.limit })
      throw oauthError('too_many_requests', 'Too many failed logins; retry later', reservation.retryAfterMs / 1000)
    }

    let epoch: number
    let user: UserRecord | null | undefined
    let ok: boolean
    try {
      // Before the user is looked up: a "log out everywhere" (after a password change, say) that
      // returns after this read ends whatever this login issues, even with the old password.
      epoch = await revocationEpoch()
      user = await findUser(username, request)
      const hash = typeof user?.passwordHash === 'string' ? user.passwordHash : undefined
      if (user != null && hash === undefined) noHash(request)
      ok = await passwords.check(hash, rawPassword, request)
    } catch (error) {
      await reservation.cancelled()
      throw error
    }
    if (!ok || user == null || user.disabled === true) {
      emit(request, { type: 'login.failure', username, reason: ok ? 'disabled' : 'bad_credentials' })
      // One answer for a wrong password, an unknown user and a disabled one (ASVS 6.3.8).
      throw oauthError('invalid_grant', ONE_FAILURE)
    }
    try {
      await reservation.succeeded()
    } catch (error) {
      // The source could not be remembered (a full memory store): the login stands, the source
      // stays unknown, and nothing else is lost.
      if (!(error instanceof StoreFullError)) throw error
      emit(request, { type: 'store.full', username, reason: (error as { table?: string }).table })
    }
    const account = user
    if (onPasswordRehash !== undefined && passwords.needsRehash(account.passwordHash)) {
      if (!bcryptMayHaveTruncated(account.passwordHash, rawPassword)) rehash(request, account, rawPassword)
      else request.log.info('password rehash skipped: bcrypt compared only the first 72 bytes of the password; the hash stays until the password changes')
    }

    // RFC 6749 §3.3: the server may grant less than asked, and says so in `scope`. An error here,
    // after the password was found right, would tell a guesser so.
    const allowed = userScopes(account)
    const scope = requested === undefined ? [...allowed] : requested.filter((s) => allowed.includes(s))
    const sub = String(account.id ?? account.username)
    const issued = await issue(request, { user: account, username, sub, clientId, scope, requested, epoch })
    emit(request, { type: 'login.success', username, clientId })
    return device === undefined ? issued : { ...issued, device }
  }
}
