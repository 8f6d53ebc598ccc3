/** What the budget says about one event. */
export interface LogDecision {
  /** Write this event's line. */
  log: boolean
  /** Lines of this kind left out since the last one written (reported on this line). */
  skipped: number
  /** The first event of its kind left out in this second: say once that lines are being left out. */
  overflowing: boolean
}

/** Caps the log lines written per kind of event, per second, and per source within a kind. */
export type LogBudget = (kind: string, source: string, now: number) => LogDecision

interface Window {
  start: number
  used: number
  skipped: number
  /** Whether this second's first line left out has been reported. */
  warned: boolean
  /** Lines written this second per source: at most `perSecond` entries, as each had a line. */
  bySource: Map<string, number>
}

/**
 * At most `perSecond` log lines a second for each kind of event, and at most `perSource` of
 * them for one source.
 *
 * A client can cause some security events at the rate it can send requests (a throttled login,
 * a forged token): without a cap a flood of them writes as many log lines as it sends requests,
 * which costs the server a write per request and fills the log store for the attacker (OWASP
 * Logging Cheat Sheet: protect logging from denial of service). A cap is also a way to hide an
 * attack (the same cheat sheet: an attacker may try to stop events being recorded): a flood of
 * cheap events would push out the lines of a real one. So the kind is the event type and its
 * reason (a flood of 429s from one address leaves the per-username lines of a guesser alone),
 * and one source gets a tenth of a kind's lines at most (a flood of forged tokens from one
 * address leaves room for the replayed token from another). Past the cap the lines are counted:
 * the next line of that kind carries how many were left out, and `onAuthEvent` hears them all.
 */
export function createLogBudget (perSecond: number, perSource = Math.max(1, Math.floor(perSecond / 10))): LogBudget {
  // Keyed by type and reason, both from short fixed lists in the code: bounded.
  const windows = new Map<string, Window>()
  return function take (kind, source, now) {
    let window = windows.get(kind)
    if (window === undefined) {
      window = { start: now, used: 0, skipped: 0, warned: false, bySource: new Map() }
      windows.set(kind, window)
    } else if (now - window.start >= 1000) {
      window.start = now
      window.used = 0
      window.warned = false
      window.bySource.clear()
    }
    const fromSource = window.bySource.get(source) ?? 0
    if (window.used >= perSecond || fromSource >= perSource) {
      // Once a second whichever cap was reached, the kind's or one source's share of it.
      const overflowing = !window.warned
      window.warned = true
      window.skipped += 1
      return { log: false, skipped: window.skipped, overflowing }
    }
    window.used += 1
    window.bySource.set(source, fromSource + 1)
    const skipped = window.skipped
    window.skipped = 0
    return { log: true, skipped, overflowing: false }
  }
}
