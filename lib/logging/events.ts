import type { FastifyRequest } from 'fastify'
import { isPromise } from '../util/is-promise.js'
import { sourceOf } from '../throttle/keys.js'
import { createLogBudget } from './log-budget.js'

/** The security events the plugin reports. */
export type AuthEventType =
  | 'login.success'
  | 'login.failure'
  | 'login.throttled'
  | 'client.failure'
  | 'client.throttled'
  | 'client.token'
  | 'introspection.throttled'
  | 'token.rejected'
  | 'password.rehashed'
  | 'refresh.success'
  | 'refresh.failure'
  | 'refresh.reuse'
  | 'token.revoked'
  | 'store.full'
  | 'csrf.refused'

/**
 * One security event. It never carries a password, a hash or a token: only who (username,
 * client), from where (IP), and why (a short fixed reason).
 */
export interface AuthEvent {
  type: AuthEventType
  ip: string
  requestId: string
  username?: string
  clientId?: string
  /** A fixed word saying why, e.g. `bad_credentials`, `expired`, `per_username`; for `store.full`, the table. */
  reason?: string
}

// Routine events; every other one is worth a warning.
const INFO = new Set<AuthEventType>(['login.success', 'password.rehashed', 'refresh.success', 'token.revoked', 'client.token'])

/** Reports an event to the request logger and to the host's `onAuthEvent`. */
export type EmitEvent = (request: FastifyRequest, event: Omit<AuthEvent, 'ip' | 'requestId'>) => void

/** Log lines a second for each type and reason of event; past that they are counted (see createLogBudget). */
export const LOG_LINES_PER_SECOND = 100
/** Of which one source (sourceOf: an IPv4 address, an IPv6 /64) may write this many. */
export const LOG_LINES_PER_SOURCE = LOG_LINES_PER_SECOND / 10

export function createEventEmitter (onAuthEvent: ((event: AuthEvent) => unknown) | undefined): EmitEvent {
  const budget = createLogBudget(LOG_LINES_PER_SECOND, LOG_LINES_PER_SOURCE)
  return function emit (request, partial) {
    const { log, skipped, overflowing } = budget(`${partial.type} ${partial.reason ?? ''}`, sourceOf(request), Date.now())
    // A flood of throttled logins or forged tokens emits an event per request, nearly all of
    // them past the log budget: without a listener, those cost no more than the count.
    if (!log && onAuthEvent === undefined) {
      if (overflowing) warnOverflow(request, partial.type, partial.reason)
      return
    }
    const event: AuthEvent = { ...partial, ip: request.ip, requestId: String(request.id) }
    if (log) {
      const level = INFO.has(event.type) ? 'info' : 'warn'
      request.log[level](skipped === 0 ? { authEvent: event } : { authEvent: event, skippedLines: skipped }, `auth event ${event.type}`)
    } else if (overflowing) {
      warnOverflow(request, event.type, event.reason)
    }
    if (onAuthEvent !== undefined) {
      // A failing listener must not turn a login into a 500, nor, when it is async and
      // rejects, end the process on an unhandled rejection.
      const failed = (error: unknown): void => { request.log.error({ err: error }, 'onAuthEvent listener failed') }
      try {
        const result = onAuthEvent(event)
        if (isPromise(result)) result.then(undefined, failed)
      } catch (error) {
        failed(error)
      }
    }
  }
}

function warnOverflow (request: FastifyRequest, type: AuthEventType, reason: string | undefined): void {
  const kind = reason === undefined ? type : `${type} (${reason})`
  request.log.warn({ authEventType: type, ...(reason === undefined ? {} : { authEventReason: reason }) },
    `auth events ${kind} over their log budget (${LOG_LINES_PER_SECOND} lines a second, ${LOG_LINES_PER_SOURCE} from one source): ` +
    'the rest of this second\'s are counted, not logged')
}
