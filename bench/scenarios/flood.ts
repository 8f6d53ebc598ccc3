/*
 * Logins under a flood, against the hand-written peer: 50 connections send the right password
 * to /token as fast as they are answered (a closed loop), throttling off, while a probe times
 * GET /protected and the server's event-loop delay is read over the same seconds; then the flood
 * again, with 50 connections of their own on GET /protected, as the issue measured it. Run once
 * with the servers unpinned and once with each server on one core (the bench's client on another).
 */
import { expect, load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { LOAD_CPU, pinningUnavailable, SERVER_CPU, withBenchPinned } from '../harness/pinning.js'
import { probeWithEventLoopDelay, type LatencyWindow } from '../harness/probe.js'
import { rawArgon2 } from '../harness/raw-argon2.js'
import { FORM, login, RIGHT } from '../harness/requests.js'
import { withServers, type BenchServer } from '../harness/server-process.js'
import type { HashingBounds, Settings } from '../harness/settings.js'

/** The issue's flood: this many connections, each sending its next login when answered. */
export const FLOOD_CONNECTIONS = 50

/** Long enough for a core to hash the 50 logins a flood can leave behind. */
const SETTLE_MS = 3000

export interface FloodRun extends LatencyWindow {
  /** The flood's answers: 200s are the logins served. */
  token: LoadResult
  /**
   * GET /protected from FLOOD_CONNECTIONS connections of its own, each sending its next request
   * when answered, during a second run of the same flood: the issue's measurement (wrk on
   * /protected while /token is flooded), whose p50 includes the wait behind the other connections.
   */
  protectedLoad: LoadResult
}

export interface FloodFigures {
  /** argon2.verify alone, with the same CPUs the server had, and as many at once as its pool. */
  rawArgon2PerSecond: number
  ours: FloodRun
  peer: FloodRun
}

export type FloodMode = { pinned: false } | { pinned: true }

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * The flood on `server` for `warm` + `seconds`, in a worker thread so that its client work does
 * not delay what is measured beside it; resolves once `warm` has passed, with the flood's result.
 */
async function floodFor (server: BenchServer, warm: number, seconds: number): Promise<{ flood: Promise<LoadResult> }> {
  const flood = load(undefined, {
    url: `${server.url}/token`, method: 'POST', headers: FORM, body: RIGHT, connections: FLOOD_CONNECTIONS, duration: warm + seconds, workers: 1
  })
  await sleep(warm * 1000)
  return { flood }
}

/** One server under the flood, probed once the flood is under way; then under it again with /protected loaded. */
async function floodOne (name: string, server: BenchServer, { time }: Settings): Promise<FloodRun> {
  const token = (await login(server.url)).access_token as string
  log(`${name}: ${FLOOD_CONNECTIONS} connections flood POST /token; GET /protected probed after ${time.warm} s`)
  const first = await floodFor(server, time.warm, time.run)
  const window = await probeWithEventLoopDelay(server, token, time.run)
  const result = await first.flood
  expect(`${name}: the login flood`, result, '200')
  log(`${name}: the flood again, with ${FLOOD_CONNECTIONS} connections on GET /protected after ${time.warm} s`)
  const loaded = time.run / 2
  const again = await floodFor(server, time.warm, loaded)
  // In the bench's main thread, so that every response time is kept (a worker gives only
  // autocannon's whole-millisecond histogram).
  const protectedLoad = await load(server, {
    url: `${server.url}/protected`, headers: { authorization: `Bearer ${token}` }, connections: FLOOD_CONNECTIONS, duration: loaded
  })
  expect(`${name}: GET /protected during the flood`, protectedLoad, '200')
  await again.flood
  return { ...window, token: result, protectedLoad }
}

/**
 * The flood on our example server and on the peer, unpinned or each on one core. `raw` is the
 * unpinned argon2 rate when the run has measured it already.
 */
export async function runFlood (settings: Settings, hashing: HashingBounds, pinned: boolean, raw?: number): Promise<FloodFigures | { skipped: string }> {
  const mode = pinned ? 'pinned' : 'unpinned'
  const run = async (): Promise<FloodFigures> => await withServers([
    [`flood-${mode}`, { RATE_LIMIT: 'off' }, { pinned }],
    [`flood-${mode}-peer`, { RATE_LIMIT: 'off' }, { app: 'peer', pinned }]
  ], async ([ours, peer]) => {
    // On one core the server's pool has one slot: the limit is one hash at a time on one core.
    const concurrency = pinned ? 1 : hashing.maxConcurrent
    // A shared VM's core runs faster or slower from one minute to the next: the limit is measured
    // half before the floods and half after, and the two averaged, so that a slow or fast spell
    // during one of them does not decide the ratio alone. Pinned, it is measured on the servers'
    // own core, while they idle: the cores of a VM need not be equally fast (on the machine of
    // bench/README.md's figures, one hashed a quarter slower than the other).
    const measureRaw = async (when: string): Promise<number> => {
      log(`flood (${mode}): raw argon2.verify, ${concurrency} at once, ${when}${pinned ? `, on the servers' core (CPU ${SERVER_CPU})` : ''}`)
      const measure = async (): Promise<number> => (await rawArgon2(concurrency, settings.time.raw / 2)).perSecond
      return pinned ? await withBenchPinned(SERVER_CPU, measure) : await measure()
    }
    const before = pinned || raw === undefined ? await measureRaw('before the floods') : raw
    const figures = {
      ours: await floodOne(`flood-${mode}`, ours as BenchServer, settings),
      peer: await floodOne(`flood-${mode}-peer`, peer as BenchServer, settings)
    }
    // Logins the floods left in a server's queue (or, on the peer, in libuv's) are still hashed
    // once their connections are gone: let them finish before the core is measured again.
    if (pinned || raw === undefined) await sleep(settings.smoke ? 0 : SETTLE_MS)
    const rawArgon2PerSecond = pinned || raw === undefined ? (before + await measureRaw('after them')) / 2 : raw
    return { rawArgon2PerSecond, ...figures }
  })
  if (!pinned) return await run()
  const unavailable = pinningUnavailable()
  if (unavailable !== undefined) return { skipped: unavailable }
  return await withBenchPinned(LOAD_CPU, run)
}
