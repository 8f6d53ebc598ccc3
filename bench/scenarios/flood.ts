/*
 * First the same 50-connection load on GET /protected with no flood, beside the bare Fastify
 * app's GET /public under it: the tail this machine gives that load when nothing floods it and
 * no plugin runs, which the p99 ≤ 3 × p50 target is read against.
 * Then logins under a flood, against the hand-written peer: 50 connections send the right password
 * to /token as fast as they are answered (a closed loop), throttling off, while a probe times
 * GET /protected and the server's event-loop delay is read over the same seconds; then the flood
 * again, with 50 connections of their own on GET /protected, as the issue measured it. The logins
 * a second are then measured in short turns that alternate with argon2 alone. Run once with the
 * servers unpinned and once with each server on one core (the bench's client on another).
 */
import { alternate, expect, load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { LOAD_CPU, pinningUnavailable, SERVER_CPU, withBenchPinned } from '../harness/pinning.js'
import { probeWithEventLoopDelay, type LatencyWindow } from '../harness/probe.js'
import { rawArgon2 } from '../harness/raw-argon2.js'
import { FORM, login, RIGHT } from '../harness/requests.js'
import { withServers, type BenchServer } from '../harness/server-process.js'
import type { HashingBounds, Settings } from '../harness/settings.js'

/** The issue's flood: this many connections, each sending its next login when answered. */
export const FLOOD_CONNECTIONS = 50

/**
 * Rounds of the login turns: argon2 alone, the flood on our server, the flood on the peer, in that
 * order and then in the reverse one. A shared VM's core hashes a fifth faster or slower from one
 * ten seconds to the next (bench/README.md): measured minutes apart, the limit and the logins
 * compared a fast spell with a slow one.
 */
const LOGIN_ROUNDS = 4
/** Seconds of each login turn. */
const LOGIN_TURN = 2
/** The most a server is waited for to finish the logins a turn left in its queue. */
const SETTLE_MAX_MS = 5000

export interface FloodRun extends LatencyWindow {
  /** The first flood's answers (under the probe): 200s are the logins served. */
  token: LoadResult
  /** Logins a second over the login turns, in which this server had the core(s) to itself. */
  loginsPerSecond: number
  /**
   * GET /protected from FLOOD_CONNECTIONS connections of its own, each sending its next request
   * when answered, during a second run of the same flood: the issue's measurement (wrk on
   * /protected while /token is flooded), whose p50 includes the wait behind the other connections.
   */
  protectedLoad: LoadResult
}

/** The 50-connection load with no flood: our GET /protected, and the bare app's GET /public. */
export interface CalmFigures {
  bare: LoadResult
  ours: LoadResult
}

export interface FloodFigures {
  calm: CalmFigures
  /**
   * argon2.verify alone, with the same CPUs the server had, and as many at once as its pool,
   * over the login turns it alternated with.
   */
  rawArgon2PerSecond: number
  /** How many login turns each figure is summed over, and the seconds of each. */
  loginTurns: { count: number, seconds: number }
  ours: FloodRun
  peer: FloodRun
  /** What timed the 50-connection loads, the calm ones and those during the flood (BENCH_CLIENT). */
  timedBy: Settings['client']
}

export type FloodMode = { pinned: false } | { pinned: true }

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The server's CPU time so far, in ms. */
async function cpuMs (server: BenchServer): Promise<number> {
  const { cpuUser, cpuSystem } = await server.stats()
  return (cpuUser + cpuSystem) / 1000
}

/**
 * Waits until `server` is idle (less than 5 ms of CPU in 100 ms): once its flood has stopped, our
 * server drops the logins whose clients went, but the peer hashes all it had queued.
 */
async function settle (server: BenchServer): Promise<void> {
  const deadline = performance.now() + SETTLE_MAX_MS
  let last = await cpuMs(server)
  while (performance.now() < deadline) {
    await sleep(100)
    const now = await cpuMs(server)
    if (now - last < 5) return
    last = now
  }
}

/**
 * Logins a second of each server under the flood, and argon2 alone, measured in turns of
 * LOGIN_TURN seconds, in the order raw, ours, peer and back: every figure spans the same spells
 * of the machine. Each server is idle again before the next turn starts.
 */
async function loginTurns (servers: [BenchServer, BenchServer], raw: (seconds: number) => Promise<number>, smoke: boolean): Promise<{ raw: number, logins: [number, number], turns: FloodFigures['loginTurns'] }> {
  const turn = smoke ? 0.5 : LOGIN_TURN
  const rounds = smoke ? 1 : LOGIN_ROUNDS
  let hashed = 0
  let rawSeconds = 0
  const served: [number, number] = [0, 0]
  const seconds: [number, number] = [0, 0]
  for (let round = 0; round < rounds; round++) {
    const order = ['raw', 0, 1] as const
    for (const which of round % 2 === 0 ? order : [...order].reverse()) {
      if (which === 'raw') {
        hashed += await raw(turn) * turn
        rawSeconds += turn
        continue
      }
      const server = servers[which]
      const result = await load(undefined, {
        url: `${server.url}/token`, method: 'POST', headers: FORM, body: RIGHT, connections: FLOOD_CONNECTIONS, duration: turn, workers: 1
      })
      served[which] += result.statuses['200'] ?? 0
      seconds[which] += result.seconds
      await settle(server)
    }
  }
  return { raw: hashed / rawSeconds, logins: [served[0] / seconds[0], served[1] / seconds[1]], turns: { count: rounds, seconds: turn } }
}

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
async function floodOne (name: string, server: BenchServer, { time, client }: Settings): Promise<FloodRun> {
  const token = (await login(server.url)).access_token as string
  log(`${name}: ${FLOOD_CONNECTIONS} connections flood POST /token; GET /protected probed after ${time.warm} s`)
  const first = await floodFor(server, time.warm, time.run)
  const window = await probeWithEventLoopDelay(server, token, time.run)
  const result = await first.flood
  expect(`${name}: the login flood`, result, '200')
  log(`${name}: the flood again, with ${FLOOD_CONNECTIONS} connections on GET /protected after ${time.warm} s`)
  const loaded = time.run / 2
  const again = await floodFor(server, time.warm, loaded)
  // autocannon runs it in the bench's main thread, so that every response time is kept (a worker
  // gives only its whole-millisecond histogram).
  const protectedLoad = await load(server, {
    url: `${server.url}/protected`, headers: { authorization: `Bearer ${token}` }, connections: FLOOD_CONNECTIONS, duration: loaded, client
  })
  expect(`${name}: GET /protected during the flood`, protectedLoad, '200')
  await again.flood
  return { ...window, token: result, loginsPerSecond: Number.NaN, protectedLoad }
}

/**
 * FLOOD_CONNECTIONS connections, each sending its next request when answered, on our GET
 * /protected and on the bare app's GET /public, in alternating turns, with nothing flooding.
 */
async function calm (ours: BenchServer, bare: BenchServer, { time, smoke, client }: Settings): Promise<CalmFigures> {
  const token = (await login(ours.url)).access_token as string
  const loads = [
    { url: `${bare.url}/public`, server: bare, connections: FLOOD_CONNECTIONS, client },
    { url: `${ours.url}/protected`, headers: { authorization: `Bearer ${token}` }, connections: FLOOD_CONNECTIONS, client }
  ]
  log(`calm: ${FLOOD_CONNECTIONS} connections on GET /protected and on the bare app's GET /public, no flood, after ${time.warm} s each to warm up`)
  // Warmed up as the flood's load is (it starts seconds into the flood): a fresh server's first
  // requests wait for the compiler and would put a tail on the floor that the flood's load lacks.
  for (const options of loads) await load(undefined, { ...options, duration: time.warm, latencies: false })
  // Two turns each of the same length as the flood's load, so that each turn opens its
  // connections as often as that load does.
  const [bareLoad, oursLoad] = await alternate(ours, loads, time.run, smoke ? 1 : 2) as [LoadResult, LoadResult]
  expect('calm: bare GET /public', bareLoad, '200')
  expect('calm: GET /protected', oursLoad, '200')
  return { bare: bareLoad, ours: oursLoad }
}

/** The flood on our example server and on the peer, unpinned or each on one core. */
export async function runFlood (settings: Settings, hashing: HashingBounds, pinned: boolean): Promise<FloodFigures | { skipped: string }> {
  const mode = pinned ? 'pinned' : 'unpinned'
  const run = async (): Promise<FloodFigures> => await withServers([
    [`flood-${mode}`, { RATE_LIMIT: 'off' }, { pinned }],
    [`flood-${mode}-peer`, { RATE_LIMIT: 'off' }, { app: 'peer', pinned }],
    [`flood-${mode}-bare`, { RATE_LIMIT: 'off' }, { app: 'bare', pinned }]
  ], async ([ours, peer, bare]) => {
    // On one core the server's pool has one slot: the limit is one hash at a time on one core.
    const concurrency = pinned ? 1 : hashing.maxConcurrent
    // Pinned, the limit is measured on the servers' own core, while they idle: the cores of a VM
    // need not be equally fast (on the machine of bench/README.md's figures, one hashed a quarter
    // slower than the other).
    const raw = async (seconds: number): Promise<number> => {
      const measure = async (): Promise<number> => (await rawArgon2(concurrency, seconds)).perSecond
      return pinned ? await withBenchPinned(SERVER_CPU, measure) : await measure()
    }
    const servers = [ours, peer] as [BenchServer, BenchServer]
    const figures = {
      calm: await calm(servers[0], bare as BenchServer, settings),
      ours: await floodOne(`flood-${mode}`, servers[0], settings),
      peer: await floodOne(`flood-${mode}-peer`, servers[1], settings)
    }
    await Promise.all(servers.map(settle))
    log(`flood (${mode}): logins a second in turns with raw argon2.verify (${concurrency} at once${pinned ? `, on the servers' core, CPU ${SERVER_CPU}` : ''})`)
    const turns = await loginTurns(servers, raw, settings.smoke)
    figures.ours.loginsPerSecond = turns.logins[0]
    figures.peer.loginsPerSecond = turns.logins[1]
    return { rawArgon2PerSecond: turns.raw, loginTurns: turns.turns, ...figures, timedBy: settings.client }
  })
  if (!pinned) return await run()
  const unavailable = pinningUnavailable()
  if (unavailable !== undefined) return { skipped: unavailable }
  return await withBenchPinned(LOAD_CPU, run)
}
