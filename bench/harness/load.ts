/*
 * Load on the server with autocannon (or wrk, for the loads that ask for it), and what each load
 * is summed up to: answers by status, exact latency percentiles, and the server's CPU time per
 * answer, read from the server process around the run.
 */
import autocannon from 'autocannon'
import type { ServerStats } from '../server.js'
import type { BenchServer } from './server-process.js'
import { wrk } from './wrk.js'

/** Exact percentile of a list of milliseconds. */
export function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

export interface LoadResult {
  seconds: number
  /** Responses by status code. */
  statuses: Record<string, number>
  /** Latency in ms over every response (autocannon's own histogram has 1 ms steps; these are exact). */
  p50: number
  p99: number
  errors: number
  /** Server CPU time over the run, as a share of one core (the thread pool included). */
  serverCpu: number
  /** Server CPU time per response, in µs: what one request costs, whoever was the bottleneck. */
  cpuPerRequest: number
}

export interface LoadOptions extends autocannon.Options {
  /** The server whose CPU time is read around this load, when not the one `alternate` was given. */
  server?: BenchServer
  /** Collect response times here (off for floods run in a worker thread). */
  latencies?: boolean
  /**
   * Stop after this many responses. (autocannon's `amount` gives each connection an equal share,
   * so a run lasts as long as its slowest connection: one parked in the hashing queue.)
   */
  responses?: number
  /**
   * What sends the load and times it: autocannon (the default), or wrk (bench/harness/wrk.ts),
   * to which only `url`, `headers`, `connections` and `duration` are passed on.
   */
  client?: 'autocannon' | 'wrk'
}

interface Measure {
  statuses: Record<string, number>
  seconds: number
  errors: number
  times: ArrayLike<number>
  /** Server CPU time over the run, in µs; NaN when not read. */
  cpuMicros: number
  wall: number
}

/** The server's CPU time between two readings, in µs; NaN when either was not read (no server). */
export function cpuBetween (before: ServerStats | undefined, after: ServerStats | undefined): number {
  return before === undefined || after === undefined
    ? Number.NaN
    : (after.cpuUser + after.cpuSystem) - (before.cpuUser + before.cpuSystem)
}

/** Drives the server with autocannon, or wrk, and reads the server's CPU time around it. */
async function measure (server: BenchServer | undefined, options: LoadOptions): Promise<Measure> {
  const before = await server?.stats()
  const started = process.hrtime.bigint()
  const client = options.client === 'wrk' ? wrkMeasure : cannonMeasure
  const run = await client(options)
  const wall = Number(process.hrtime.bigint() - started) / 1e6
  const after = await server?.stats()
  return { ...run, cpuMicros: cpuBetween(before, after), wall }
}

type ClientRun = Omit<Measure, 'cpuMicros' | 'wall'>

async function wrkMeasure ({ url, headers, connections = 10, duration = 10 }: LoadOptions): Promise<ClientRun> {
  return await wrk({ url, headers, connections, duration: Number(duration) })
}

async function cannonMeasure (options: LoadOptions): Promise<ClientRun> {
  const times: number[] = []
  const { latencies, responses: stopAfter, server: _server, client: _client, ...cannon } = options
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    // autocannon looks at stop() once per sample interval (1 s by default): sample more often
    // when the run is to stop after a number of responses.
    const instance = autocannon({ timeout: 10, ...(stopAfter === undefined ? {} : { sampleInt: 50 }), ...cannon }, (error, result) => {
      if (error !== null && error !== undefined) reject(error instanceof Error ? error : new Error(String(error)))
      else resolve(result)
    })
    if (latencies !== false && options.workers === undefined) {
      instance.on('response', (_client, _status, _bytes, responseTime) => { times.push(responseTime) })
    }
    if (stopAfter !== undefined) {
      let count = 0
      instance.on('response', () => { if (++count === stopAfter) instance.stop() })
    }
  })
  const statuses: Record<string, number> = {}
  for (const [code, entry] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = entry.count ?? 0
  return { statuses, seconds: result.duration, errors: result.errors, times }
}

/** One figure from one or more runs of the same load. */
function summarize (measures: Measure[]): LoadResult {
  const statuses: Record<string, number> = {}
  let seconds = 0
  let errors = 0
  let cpuMicros = 0
  let wall = 0
  for (const m of measures) {
    for (const [code, count] of Object.entries(m.statuses)) statuses[code] = (statuses[code] ?? 0) + count
    seconds += m.seconds
    errors += m.errors
    cpuMicros += m.cpuMicros
    wall += m.wall
  }
  // Every run's response times in one array, without copying the typed arrays wrk's runs give.
  const sorted = new Float64Array(measures.reduce((sum, m) => sum + m.times.length, 0))
  let filled = 0
  for (const m of measures) {
    sorted.set(m.times, filled)
    filled += m.times.length
  }
  sorted.sort()
  const responses = Object.values(statuses).reduce((sum, n) => sum + n, 0)
  return {
    seconds,
    statuses,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    errors,
    serverCpu: cpuMicros / 1000 / wall,
    cpuPerRequest: cpuMicros / responses
  }
}

/** One load, once. Without a server, its CPU time is not read (loads that only warm up or fill). */
export async function load (server: BenchServer | undefined, options: LoadOptions): Promise<LoadResult> {
  return summarize([await measure(server, options)])
}

/**
 * Runs the loads in turn, `rounds` times over, for `seconds` each in all. Figures that a target
 * compares are measured this way, so that a busy moment on the machine falls on all of them
 * alike rather than on one.
 */
export async function alternate (server: BenchServer, loads: LoadOptions[], seconds: number, rounds: number): Promise<LoadResult[]> {
  return (await alternateMeasures(server, loads, seconds, rounds)).map(summarize)
}

/** A figure pooled over several processes of one app, and the figure of each. */
export interface PooledResult {
  pooled: LoadResult
  each: LoadResult[]
}

/**
 * As `alternate`, with each figure pooled over a group of loads: the same load on several
 * processes of one app. Two processes of the same code, measured alike, differ by more than a
 * plugin's cost per request (bench/README.md, *`overhead`*); pooled, a figure no longer hangs
 * on one process's draw.
 */
export async function alternatePooled (server: BenchServer, groups: LoadOptions[][], seconds: number, rounds: number): Promise<PooledResult[]> {
  const measures = await alternateMeasures(server, groups.flat(), seconds, rounds)
  let next = 0
  return groups.map((group) => {
    const mine = measures.slice(next, next += group.length)
    return { pooled: summarize(mine.flat()), each: mine.map(summarize) }
  })
}

async function alternateMeasures (server: BenchServer, loads: LoadOptions[], seconds: number, rounds: number): Promise<Measure[][]> {
  const runs: Measure[][] = loads.map(() => [])
  const order = [...loads.keys()]
  for (let round = 0; round < rounds; round++) {
    // Forwards, then backwards: a drift across a round, or a turn that gains or loses by what ran
    // just before it, falls on every load alike instead of always on the same one.
    for (const i of round % 2 === 0 ? order : [...order].reverse()) {
      const options = loads[i] as LoadOptions
      runs[i]?.push(await measure(options.server ?? server, { ...options, duration: seconds / rounds }))
    }
  }
  return runs
}

/** Responses of `status` per second. */
export function rate (result: LoadResult, status: string): number {
  return (result.statuses[status] ?? 0) / result.seconds
}

/** Throws when a run got none of the answers it exists to measure: the bench is broken, not slow. */
export function expect (what: string, result: LoadResult, status: string): void {
  if ((result.statuses[status] ?? 0) === 0) {
    throw new Error(`${what}: no ${status} answer (got ${JSON.stringify(result.statuses)}, ${result.errors} connection errors)`)
  }
}
