/*
 * A load offered at a fixed rate, spread evenly over each second. autocannon's `overallRate`
 * gives each connection its share of a second and lets them all go again at the top of the
 * next, so a second's requests reach the server together, in one burst: the server then reads
 * them one after another in one turn of its event loop, and a timer waits for all of them. What
 * that stall measures is the size of the client's burst, which any Node server pays for each
 * request in it, not how the server holds up under the rate.
 */
import { Worker } from 'node:worker_threads'
import { cpuBetween, type LoadResult } from './load.js'
import type { BenchServer } from './server-process.js'

export interface PacedOptions {
  url: string
  method: string
  headers: Record<string, string>
  body: string
  /** Requests a second; request i goes out at i / rate seconds. */
  rate: number
  seconds: number
  /** Keep-alive connections at most; a request due while every one is busy waits for one. */
  connections: number
}

export interface PacedResult {
  statuses: Record<string, number>
  errors: number
}

/**
 * The worker's code is TypeScript, and a worker thread does not inherit the `--import tsx` the
 * bench runs with on this Node, so it registers tsx first.
 */
const WORKER = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(new URL('./paced-worker.ts', import.meta.url).href)}) })`

/**
 * Sends the load from a worker thread and reads the server's CPU time around it (not without a
 * server: a load on something else than a bench server).
 */
export async function paced (server: BenchServer | undefined, options: PacedOptions): Promise<LoadResult> {
  const before = await server?.stats()
  const started = performance.now()
  const worker = new Worker(WORKER, { eval: true, workerData: options })
  const { statuses, errors } = await new Promise<PacedResult>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
    worker.once('exit', (code) => { reject(new Error(`the paced load's worker exited with ${code}`)) })
  })
  const wall = performance.now() - started
  const cpuMicros = cpuBetween(before, await server?.stats())
  const responses = Object.values(statuses).reduce((sum, n) => sum + n, 0)
  return {
    // The seconds it sent for, as autocannon's duration: the last answers come after them.
    seconds: options.seconds,
    statuses,
    // Not timed: the load is there to flood, the probe beside it is what is timed.
    p50: Number.NaN,
    p99: Number.NaN,
    errors,
    serverCpu: cpuMicros / 1000 / wall,
    cpuPerRequest: cpuMicros / responses
  }
}
