/*
 * wrk (https://github.com/wg/wrk) for the flood scenario's 50-connection loads, with
 * BENCH_CLIENT=wrk: the tool the issue measured them with. autocannon's client runs in
 * JavaScript, so its own garbage collections and event loop could add to the response times it
 * records; wrk's client is C. bench/README.md has what the two gave side by side.
 */
import { execFile, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** Why wrk cannot time the loads here, or `undefined` when it can. */
export function wrkUnavailable (): string | undefined {
  return spawnSync('wrk', ['-v']).error === undefined ? undefined : 'wrk is not installed (Debian: apt-get install wrk)'
}

export interface WrkOptions {
  url: string
  headers?: Record<string, string | string[] | undefined>
  connections: number
  /** Seconds; wrk takes whole ones, so this is rounded, and is at least 1. */
  duration: number
}

export interface WrkResult {
  /** Answers by status code. */
  statuses: Record<string, number>
  seconds: number
  /** Connect, read, write and timeout errors. */
  errors: number
  /**
   * Response times in ms, one per answer, rebuilt from wrk's quantiles (every tenth of a
   * percentile): exact to a thousandth of the answers, which the p50 and p99 read from them are.
   */
  times: Float64Array
}

const SCRIPT = fileURLToPath(new URL('wrk.lua', import.meta.url))

/** What the script writes last: see wrk.lua. */
interface Summary {
  requests: number
  micros: number
  errors: number
  statuses: Record<string, number>
  quantiles: number[]
}

/** One wrk run, on one thread (the bench's client has one core when the server is pinned). */
export async function wrk ({ url, headers = {}, connections, duration }: WrkOptions): Promise<WrkResult> {
  const seconds = Math.max(1, Math.round(duration))
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', SCRIPT]
  for (const [name, values] of Object.entries(headers)) {
    for (const value of [values ?? []].flat()) args.push('-H', `${name}: ${value}`)
  }
  args.push(url)
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('wrk', args, { timeout: (seconds + 30) * 1000 }, (error, out) => {
      if (error !== null) reject(error)
      else resolve(out)
    })
  })
  const last = stdout.trim().split('\n').at(-1) ?? ''
  const summary = JSON.parse(last) as Summary
  const times = new Float64Array(summary.requests)
  const q = summary.quantiles
  // Answer i of n takes the quantile of its rank: the same p50 and p99 as wrk's, to a tenth of a percentile.
  for (let i = 0; i < times.length; i++) times[i] = (q[Math.floor((i * q.length) / times.length)] ?? Number.NaN) / 1000
  return { statuses: summary.statuses, seconds: summary.micros / 1e6, errors: summary.errors, times }
}
