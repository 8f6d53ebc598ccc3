/*
 * What a run is made of: how long each part lasts, in how many rounds compared figures are
 * measured, and the loads shared by several scenarios. bench/run.ts picks the settings from
 * BENCH_SMOKE; the scenarios take them as an argument.
 */

/** Seconds per part (and request counts for the memory run). */
export interface Timing {
  warm: number
  run: number
  raw: number
  memoryRequests: number
  memoryWarm: number
  /** The whole bench is stopped after this many seconds. */
  deadline: number
}

export interface Settings {
  smoke: boolean
  time: Timing
  /**
   * Figures that a target compares are measured in this many alternating rounds. On a shared VM
   * throughput drifts from one short stretch to the next (bench/README.md has by how much): short
   * turns put the drift on every figure alike instead of on whichever ran at a bad moment.
   */
  rounds: number
  /**
   * Processes of each server in the `overhead` scenario, whose figures are pooled over them: two
   * processes of the same code differ by more than the plugin's cost per request.
   */
  processes: number
  /**
   * What sends and times the 50-connection loads of the `flood` scenario, the ones whose tail its
   * targets read (BENCH_CLIENT): autocannon, as every other load, or wrk (bench/harness/wrk.ts).
   */
  client: 'autocannon' | 'wrk'
}

/** The hashing pool the example server runs with: the plugin's defaults. */
export interface HashingBounds {
  maxConcurrent: number
  maxQueue: number
  /** Milliseconds a login may wait for a slot. */
  maxWait: number
}

/** A smoke run only proves that every part still runs. */
export function settings (smoke: boolean, client: Settings['client'] = 'autocannon'): Settings {
  return {
    smoke,
    client,
    time: smoke
      ? { warm: 0.5, run: 1, raw: 1, memoryRequests: 2_000, memoryWarm: 500, deadline: 180 }
      : { warm: 3, run: 10, raw: 5, memoryRequests: 100_000, memoryWarm: 5_000, deadline: 720 },
    rounds: smoke ? 1 : 8,
    processes: smoke ? 2 : 3
  }
}

/** Connections for the throughput runs: enough to keep one server process busy. */
export const CONNECTIONS = 20
/** The latency probe: one GET /protected every PROBE_INTERVAL_MS, spread evenly. */
export const PROBE_INTERVAL_MS = 5
