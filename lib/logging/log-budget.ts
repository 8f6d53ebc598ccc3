/** What the budget says about one event. */
export interface LogDecision {
  /** Write this event's line. */
  log: boolean
  /** Lines of this kind left out since the last one written (reported on this line). */
  skipped: number
  /** The first event over budget in this second: say once that lines are being left out. */
  overflowing: boolean
}

/** Caps the log lines written per kind of event, per second. */
export type LogBudget = (kind: string, now: number) => LogDecision

/**
 * At most `perSecond` log lines a second for each kind of event.
 *
 * A client can cause some security events at the rate it can send requests (a throttled login,
 * a forged token): without a cap a flood of them writes as many log lines as it sends requests,
 * which costs the server a write per request and fills the log store for the attacker (OWASP
 * Logging Cheat Sheet: protect logging from denial of service). Past the cap the lines are
 * counted, not lost: the next line of that kind carries how many were left out.
 */
export function createLogBudget (perSecond: number): LogBudget {
  // Keyed by the kind of event, a short fixed list: bounded.
  const windows = new Map<string, { start: number, used: number, skipped: number }>()
  return function take (kind, now) {
    let window = windows.get(kind)
    if (window === undefined) {
      window = { start: now, used: 0, skipped: 0 }
      windows.set(kind, window)
    } else if (now - window.start >= 1000) {
      window.start = now
      window.used = 0
    }
    if (window.used >= perSecond) {
      const overflowing = window.used === perSecond
      window.used += 1
      window.skipped += 1
      return { log: false, skipped: window.skipped, overflowing }
    }
    window.used += 1
    const skipped = window.skipped
    window.skipped = 0
    return { log: true, skipped, overflowing: false }
  }
}
