/*
 * Logins under a flood, against the hand-written peer: 50 connections send the right password
 * to /token as fast as they are answered (a closed loop), throttling off, while a probe times
 * GET /protected and the server's event-loop delay is read over the same seconds. Run once with
 * the servers unpinned and once with each server on one core (the bench's client on another).
 */
import { expect, load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { LOAD_CPU, pinningUnavailable, withBenchPinned } from '../harness/pinning.js'
import { probeWithEventLoopDelay, type LatencyWindow } from '../harness/probe.js'
import { rawArgon2 } from '../harness/raw-argon2.js'
import { FORM, login, RIGHT } from '../harness/requests.js'
import { withServers, type BenchServer } from '../harness/server-process.js'
import type { HashingBounds, Settings } from '../harness/settings.js'

/** The flood: this many connections, each sending its next login when answered. */
export const FLOOD_CONNECTIONS = 50

export interface FloodRun extends LatencyWindow {
  /** The flood's answers: 200s are the logins served. */
  token: LoadResult
}

export interface FloodFigures {
  /** argon2.verify alone, with the same CPUs the server had, and as many at once as its pool. */
  rawArgon2PerSecond: number
  ours: FloodRun
  peer: FloodRun
}

export type FloodMode = { pinned: false } | { pinned: true }

/** One server under the flood, probed once the flood is under way. */
async function floodOne (name: string, server: BenchServer, { time }: Settings): Promise<FloodRun> {
  const token = (await login(server.url)).access_token as string
  log(`${name}: ${FLOOD_CONNECTIONS} connections flood POST /token; GET /protected probed after ${time.warm} s`)
  // In a worker thread, so that the flood's client work does not delay the probe.
  const flood = load(undefined, {
    url: `${server.url}/token`, method: 'POST', headers: FORM, body: RIGHT, connections: FLOOD_CONNECTIONS, duration: time.warm + time.run, workers: 1
  })
  await new Promise((resolve) => setTimeout(resolve, time.warm * 1000))
  const window = await probeWithEventLoopDelay(server, token, time.run)
  const result = await flood
  expect(`${name}: the login flood`, result, '200')
  return { ...window, token: result }
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
    // during one of them does not decide the ratio alone.
    const measureRaw = async (when: string): Promise<number> => {
      log(`flood (${mode}): raw argon2.verify, ${concurrency} at once, ${when}`)
      return (await rawArgon2(concurrency, settings.time.raw / 2)).perSecond
    }
    const before = pinned || raw === undefined ? await measureRaw('before the floods') : raw
    const figures = {
      ours: await floodOne(`flood-${mode}`, ours as BenchServer, settings),
      peer: await floodOne(`flood-${mode}-peer`, peer as BenchServer, settings)
    }
    const rawArgon2PerSecond = pinned || raw === undefined ? (before + await measureRaw('after them')) / 2 : raw
    return { rawArgon2PerSecond, ...figures }
  })
  if (!pinned) return await run()
  const unavailable = pinningUnavailable()
  if (unavailable !== undefined) return { skipped: unavailable }
  return await withBenchPinned(LOAD_CPU, run)
}
