/*
 * npm run bench: what the plugin costs per request, and how it behaves under a login flood.
 *
 * The server under test is the example server (bench/server.ts runs `buildServer(env)` from
 * examples/server.ts) in a process of its own; this process drives it over 127.0.0.1 with
 * autocannon. Every figure below is measured in the same run, and the targets are ratios of
 * those figures, so they mean the same on any machine. The bench prints a markdown table and
 * the PASS/FAIL lines, and writes everything as JSON to bench-results/ (git-ignored).
 *
 *   npm run bench                    # about two minutes
 *   BENCH_SMOKE=1 npm run bench      # a second or so per part: checks the script, not the numbers
 *   REDIS_URL=redis://127.0.0.1:6379 npm run bench   # adds the Redis store, where the build has one
 *
 * Exit status: 0 when the bench ran (whether or not every target was met), 1 when it could not.
 */
import autocannon from 'autocannon'
import argon2 from 'argon2'
import { fork, type ChildProcess } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { Agent, request as httpRequest } from 'node:http'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
// The built package, as the server under test runs it (and as tap does not count for coverage).
import { hashPassword } from 'fastify-jwt-auth'
import { defaultHashingConcurrency } from '../dist/esm/options/defaults.js'
import type { ServerMessage, ServerStats } from './server.js'

const SMOKE = process.env.BENCH_SMOKE === '1'
/** BENCH_ONLY=open,throttled,memory,redis runs some parts only (for working on one of them). */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'open,throttled,memory,redis').split(',').map((part) => part.trim()))
const OUT_DIR = process.env.BENCH_OUT ?? 'bench-results'

/** Seconds per part; a smoke run only proves that every part still runs. */
const TIME = SMOKE
  ? { warm: 0.5, run: 1, raw: 1, memoryRequests: 2_000, memoryWarm: 500, deadline: 120 }
  : { warm: 3, run: 12, raw: 6, memoryRequests: 100_000, memoryWarm: 5_000, deadline: 300 }

/**
 * Figures that a target compares are measured in this many alternating rounds. On a shared VM
 * throughput drifts by a tenth from one two-second stretch to the next: short turns put the
 * drift on every figure alike instead of on whichever ran at a bad moment.
 */
const ROUNDS = SMOKE ? 1 : 8
/** Connections for the throughput runs: enough to keep one server process busy. */
const CONNECTIONS = 20
/** The latency probe: one GET /protected every PROBE_INTERVAL_MS, spread evenly. */
const PROBE_INTERVAL_MS = 5
/** The login flood offers this many times the logins the machine can hash. */
const FLOOD_FACTOR = 10
/** The memory run: distinct client addresses and usernames, none repeated. */
const MEMORY_CONNECTIONS = 100

const SECRET = randomBytes(32).toString('base64url')
const RIGHT = 'grant_type=password&username=user1&password=password1'
const WRONG = 'grant_type=password&username=user1&password=not-the-password'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

const benchStart = performance.now()
function log (line: string): void {
  process.stderr.write(`bench: ${((performance.now() - benchStart) / 1000).toFixed(1).padStart(5)} s  ${line}\n`)
}

// ---------------------------------------------------------------------------------------------
// The server process

interface BenchServer {
  url: string
  stats: () => Promise<ServerStats>
  command: (cmd: 'gc' | 'reset-eld') => Promise<void>
  stop: () => Promise<void>
}

const children = new Set<ChildProcess>()
process.on('exit', () => { for (const child of children) child.kill('SIGKILL') })

/** Starts bench/server.ts with the example server's environment variables. */
async function startServer (name: string, env: Record<string, string>): Promise<BenchServer> {
  const base = { ...process.env }
  // The Redis part passes REDIS_URL on purpose; everything else runs on the memory store.
  delete base.REDIS_URL
  const child = fork(fileURLToPath(new URL('./server.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    // Request logs off (they would measure pino), security events (warn) on, as in production.
    env: { ...base, LOG_LEVEL: 'warn', JWT_SECRET: SECRET, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc']
  })
  children.add(child)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })

  /** Waits for the first message that `match` accepts; fails if the server exits first. */
  function receive<T> (what: string, match: (message: ServerMessage) => T | undefined, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { done(); reject(new Error(`${name} server: no ${what} within ${timeoutMs} ms`)) }, timeoutMs)
      const onMessage = (message: ServerMessage): void => {
        const value = match(message)
        if (value !== undefined) { done(); resolve(value) }
      }
      const onExit = (code: number | null): void => {
        done()
        reject(new Error(`${name} server exited (${code ?? 'signal'}): ${stderr.trim() || 'no output'}`))
      }
      const done = (): void => { clearTimeout(timer); child.off('message', onMessage); child.off('exit', onExit) }
      child.on('message', onMessage)
      child.on('exit', onExit)
    })
  }

  let lastId = 0
  async function ask (cmd: 'stats' | 'gc' | 'reset-eld'): Promise<Extract<ServerMessage, { type: 'answer' }>> {
    const id = ++lastId
    const answer = receive(`answer to ${cmd}`, (m) => m.type === 'answer' && m.id === id ? m : undefined)
    child.send({ cmd, id })
    return answer
  }

  const port = await receive('ready message', (m) => m.type === 'ready' ? m.port : undefined)
  return {
    url: `http://127.0.0.1:${port}`,
    async stats () {
      return (await ask('stats')).stats as ServerStats
    },
    async command (cmd) {
      await ask(cmd)
    },
    async stop () {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
      children.delete(child)
    }
  }
}

/** Runs `fn` against a fresh server and always stops it. */
async function withServer<T> (name: string, env: Record<string, string>, fn: (server: BenchServer) => Promise<T>): Promise<T> {
  const server = await startServer(name, env)
  try {
    return await fn(server)
  } finally {
    await server.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/** Exact percentile of a list of milliseconds. */
function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

interface LoadResult {
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

interface LoadOptions extends autocannon.Options {
  /** Collect response times here (off for floods run in a worker thread). */
  latencies?: boolean
  /**
   * Stop after this many responses. (autocannon's `amount` gives each connection an equal share,
   * so a run lasts as long as its slowest connection: one parked in the hashing queue.)
   */
  responses?: number
}

interface Measure {
  result: autocannon.Result
  times: number[]
  /** Server CPU time over the run, in µs; NaN when not read. */
  cpuMicros: number
  wall: number
}

/** Drives the server with autocannon and reads the server's CPU time around it. */
async function measure (server: BenchServer | undefined, options: LoadOptions): Promise<Measure> {
  const before = await server?.stats()
  const started = process.hrtime.bigint()
  const times: number[] = []
  const { latencies, responses: stopAfter, ...cannon } = options
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
  const wall = Number(process.hrtime.bigint() - started) / 1e6
  const after = await server?.stats()
  const cpuMicros = before === undefined || after === undefined
    ? Number.NaN
    : (after.cpuUser + after.cpuSystem) - (before.cpuUser + before.cpuSystem)
  return { result, times, cpuMicros, wall }
}

/** One figure from one or more runs of the same load. */
function summarize (measures: Measure[]): LoadResult {
  const statuses: Record<string, number> = {}
  let seconds = 0
  let errors = 0
  let cpuMicros = 0
  let wall = 0
  for (const m of measures) {
    for (const [code, entry] of Object.entries(m.result.statusCodeStats ?? {})) statuses[code] = (statuses[code] ?? 0) + (entry.count ?? 0)
    seconds += m.result.duration
    errors += m.result.errors
    cpuMicros += m.cpuMicros
    wall += m.wall
  }
  const sorted = Float64Array.from(measures.flatMap((m) => m.times)).sort()
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

async function load (server: BenchServer | undefined, options: LoadOptions): Promise<LoadResult> {
  return summarize([await measure(server, options)])
}

/**
 * Runs the loads in turn, ROUNDS times over, for `seconds` each in all. Figures that a target
 * compares are measured this way, so that a busy moment on the machine falls on all of them
 * alike rather than on one.
 */
async function alternate (server: BenchServer, loads: LoadOptions[], seconds: number): Promise<LoadResult[]> {
  const runs: Measure[][] = loads.map(() => [])
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, options] of loads.entries()) runs[i]?.push(await measure(server, { ...options, duration: seconds / ROUNDS }))
  }
  return runs.map(summarize)
}

/** Responses of `status` per second. */
function rate (result: LoadResult, status: string): number {
  return (result.statuses[status] ?? 0) / result.seconds
}

/** Throws when a run got none of the answers it exists to measure: the bench is broken, not slow. */
function expect (what: string, result: LoadResult, status: string): void {
  if ((result.statuses[status] ?? 0) === 0) {
    throw new Error(`${what}: no ${status} answer (got ${JSON.stringify(result.statuses)}, ${result.errors} connection errors)`)
  }
}

interface ProbeResult {
  requests: number
  p50: number
  p99: number
  max: number
  statuses: Record<string, number>
}

/**
 * GET /protected every PROBE_INTERVAL_MS for `seconds`, on its own keep-alive connections.
 * Latency is counted from when each request was due, not when it went out, so a stall of the
 * server shows in full (no coordinated omission). autocannon's rate limiting sends in bursts at
 * the top of each second, which would sample only part of it.
 */
async function probe (url: string, token: string, seconds: number): Promise<ProbeResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  const latencies: number[] = []
  const statuses: Record<string, number> = {}
  const start = performance.now()
  const total = Math.round((seconds * 1000) / PROBE_INTERVAL_MS)
  const pending: Array<Promise<void>> = []
  for (let i = 0; i < total; i++) {
    const due = start + i * PROBE_INTERVAL_MS
    const wait = due - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    pending.push(new Promise<void>((resolve) => {
      const req = httpRequest(`${url}/protected`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume()
        res.on('end', () => {
          latencies.push(performance.now() - due)
          statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1
          resolve()
        })
      })
      req.on('error', () => { statuses.error = (statuses.error ?? 0) + 1; resolve() })
      req.end()
    }))
  }
  await Promise.all(pending)
  agent.destroy()
  // A probe that got anything but 200 measured something else than a protected call.
  if ((statuses['200'] ?? 0) !== total) throw new Error(`the GET /protected probe got ${JSON.stringify(statuses)}`)
  const sorted = Float64Array.from(latencies).sort()
  return { requests: total, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN, statuses }
}

/** `argon2.verify` with the plugin's default parameters, `concurrency` at a time, for `seconds`. */
async function rawArgon2 (concurrency: number, seconds: number): Promise<{ perSecond: number, parameters: string }> {
  const hash = await hashPassword('password1')
  const parameters = /\$(m=\d+,t=\d+,p=\d+)\$/.exec(hash)?.[1] ?? 'unknown'
  await argon2.verify(hash, 'password1')
  let count = 0
  const start = performance.now()
  const end = start + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      if (!await argon2.verify(hash, 'password1')) throw new Error('raw argon2: the hash did not verify')
      count += 1
    }
  }))
  return { perSecond: count / ((performance.now() - start) / 1000), parameters }
}

async function post (url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { ...FORM, ...headers }, body })
  return { status: res.status, json: await res.json() as Record<string, unknown> }
}

async function login (url: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const { status, json } = await post(`${url}/token`, RIGHT, headers)
  if (status !== 200 || typeof json.access_token !== 'string') throw new Error(`login failed: ${status} ${JSON.stringify(json)}`)
  return json
}

/** A client address per request, never repeated in a run (X-Forwarded-For; the server trusts it). */
let addressCounter = 0
function nextAddress (): string {
  const n = ++addressCounter
  return `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

// ---------------------------------------------------------------------------------------------
// The parts

interface Results {
  machine: Record<string, unknown>
  smoke: boolean
  hashing: { maxConcurrent: number, maxQueue: number, parameters: string }
  public?: LoadResult
  /** GET /public carrying the same Authorization header as /protected: what the token's bytes cost alone. */
  publicWithToken?: LoadResult
  protected?: LoadResult
  forged?: LoadResult
  rawArgon2PerSecond?: number
  token?: LoadResult
  idle?: { probe: ProbeResult, eld: ServerStats['eld'] }
  flood?: { probe: ProbeResult, eld: ServerStats['eld'], token: LoadResult, connections: number, offered: number }
  /** GET /public on the throttled server, measured in turns with the brute force. */
  publicThrottled?: LoadResult
  bruteForceOneIp?: LoadResult
  bruteForceManyIps?: LoadResult
  /** A bare Fastify form POST answered 429, from a new address each time: the floor for the row above. */
  formFloor?: LoadResult
  memory?: {
    requested: number
    requests: number
    statuses: Record<string, number>
    seconds: number
    before: ServerStats
    /** After the first half of the requests. */
    half: ServerStats
    after: ServerStats
    peakRss: number
  }
  redis?: { skipped: string } | { token: LoadResult, refresh?: LoadResult, refreshSkipped?: string } | { error: string }
  targets: Target[]
}

interface Target {
  ok: boolean
  line: string
}

function machine (): Record<string, unknown> {
  let cpu = os.cpus()[0]?.model ?? 'unknown'
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu
  } catch {}
  return {
    cpus: os.availableParallelism(),
    cpu,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    date: new Date().toISOString()
  }
}

/** GET /public vs GET /protected, a forged token, /token, and the login flood. */
async function openServerParts (results: Results): Promise<void> {
  // RATE_LIMIT=off: every login reaches the hashing pool, the worst case for a flood.
  await withServer('open', { RATE_LIMIT: 'off' }, async (server) => {
    const { url } = server
    const token = (await login(url)).access_token as string
    // The same claims under another key: a token that only its signature gives away.
    const [header, payload] = token.split('.')
    const forge = (): string => `${header}.${payload}.${createHmac('sha256', randomBytes(32)).update(`${header}.${payload}`).digest('base64url')}`
    const bearer = { authorization: `Bearer ${token}` }

    log('warming up')
    for (const path of ['/public', '/protected']) {
      await load(undefined, { url: url + path, headers: bearer, connections: CONNECTIONS, duration: TIME.warm, latencies: false })
    }
    log('GET /public, GET /public with the token, and GET /protected with the token, in turns')
    const [publicResult, publicWithTokenResult, protectedResult] = await alternate(server, [
      { url: `${url}/public`, connections: CONNECTIONS },
      { url: `${url}/public`, headers: bearer, connections: CONNECTIONS },
      { url: `${url}/protected`, headers: bearer, connections: CONNECTIONS }
    ], TIME.run)
    results.public = publicResult as LoadResult
    results.publicWithToken = publicWithTokenResult as LoadResult
    results.protected = protectedResult as LoadResult
    expect('GET /public', results.public, '200')
    expect('GET /protected', results.protected, '200')
    log('GET /protected, forged token')
    // A new forged signature on every request, as an attacker would send: no cache can help.
    results.forged = await load(server, {
      url: `${url}/protected`,
      connections: CONNECTIONS,
      duration: TIME.run,
      requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${forge()}` } }) }]
    })
    expect('GET /protected with a forged token', results.forged, '401')

    const { maxConcurrent, maxQueue } = results.hashing
    log(`raw argon2.verify, ${maxConcurrent} at once`)
    const raw = await rawArgon2(maxConcurrent, TIME.raw)
    results.rawArgon2PerSecond = raw.perSecond
    results.hashing.parameters = raw.parameters
    log('POST /token, right credentials')
    // Twice the running slots: the queue stays short of full, so every request is a login.
    results.token = await load(server, { url: `${url}/token`, method: 'POST', headers: FORM, body: RIGHT, connections: 2 * maxConcurrent, duration: TIME.run })
    expect('POST /token', results.token, '200')

    log('GET /protected latency, idle')
    await server.command('reset-eld')
    const idleProbe = await probe(url, token, TIME.run)
    results.idle = { probe: idleProbe, eld: (await server.stats()).eld }

    // The flood: FLOOD_FACTOR times the logins this machine can hash (the raw argon2 rate just
    // measured), from twice as many connections as the pool has slots and queue places, so most
    // logins find it full. The rate is fixed rather than "as fast as the client can": on a small
    // machine a client at full speed takes the CPU the server needs, and the figures would
    // measure the client. It runs in a worker thread, so the probe in this thread is not delayed
    // by the flood's own client work.
    const connections = 2 * (maxConcurrent + maxQueue)
    const offered = Math.max(connections, Math.round(FLOOD_FACTOR * results.rawArgon2PerSecond))
    log(`GET /protected latency during a login flood (${offered} logins a second from ${connections} connections)`)
    const flood = load(server, {
      url: `${url}/token`, method: 'POST', headers: FORM, body: RIGHT, connections, overallRate: offered, duration: TIME.warm + TIME.run + 1, workers: 1
    })
    await new Promise((resolve) => setTimeout(resolve, TIME.warm * 1000))
    await server.command('reset-eld')
    const floodProbe = await probe(url, token, TIME.run)
    const eld = (await server.stats()).eld
    const floodResult = await flood
    expect('the login flood', floodResult, '200')
    expect('the login flood', floodResult, '503')
    results.flood = { probe: floodProbe, eld, token: floodResult, connections, offered }
  })
}

/** 429s per second during brute force against one username, from one address and from many. */
async function throttledServerParts (results: Results): Promise<void> {
  await withServer('throttled', { TRUST_PROXY: '1', BENCH_FLOOR: '1' }, async (server) => {
    const { url } = server
    log('brute force on one username from one address, from a new address each time, a bare form POST, and GET /public, in turns')
    const fromNewAddresses = (path: string): LoadOptions => ({
      url: `${url}${path}`,
      connections: CONNECTIONS,
      requests: [{
        method: 'POST',
        body: WRONG.replace('user1', 'victim'),
        setupRequest: (request) => ({ ...request, headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() } })
      }]
    })
    const [publicResult, oneIp, manyIps, floor] = await alternate(server, [
      { url: `${url}/public`, connections: CONNECTIONS },
      { url: `${url}/token`, method: 'POST', headers: FORM, body: WRONG, connections: CONNECTIONS },
      fromNewAddresses('/token'),
      fromNewAddresses('/bench-floor')
    ], TIME.run)
    results.publicThrottled = publicResult as LoadResult
    results.bruteForceOneIp = oneIp as LoadResult
    results.bruteForceManyIps = manyIps as LoadResult
    results.formFloor = floor as LoadResult
    expect('GET /public', results.publicThrottled, '200')
    expect('brute force from one address', results.bruteForceOneIp, '429')
    expect('brute force from many addresses', results.bruteForceManyIps, '429')
    expect('a bare form POST', results.formFloor, '429')
  })
}

/**
 * Memory over many distinct keys: each request comes from a new address (X-Forwarded-For) for a
 * new username, so each adds a key to @fastify/rate-limit's per-address LRU and two login
 * counters (per username, per username and address) to the memory store.
 *
 * Which body: a password login for an unknown user, sent by more connections than the hashing
 * pool has slots and queue places. The pool stays full, so nearly every request passes the
 * per-address limit and reserves its login counters, then finds no slot and gets 503 at once,
 * without hashing; the few that find a slot verify the dummy hash and get 400. Both paths go
 * through every per-key structure, which a body refused earlier (bad form, missing field) would
 * not. A warm-up of the same traffic comes first, so that argon2's memory for a full pool and
 * the JIT are in the "before" figure, not counted as growth.
 */
async function memoryPart (results: Results): Promise<void> {
  await withServer('memory', { TRUST_PROXY: '1' }, async (server) => {
    const { url } = server
    let user = 0
    const distinct = (prefix: string): autocannon.Request[] => [{
      method: 'POST',
      setupRequest: (request) => ({
        ...request,
        headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() },
        body: `grant_type=password&username=${prefix}${++user}&password=not-the-password`
      })
    }]
    log(`memory: warm-up, ${TIME.memoryWarm} requests`)
    await load(undefined, { url: `${url}/token`, connections: MEMORY_CONNECTIONS, duration: TIME.deadline, responses: TIME.memoryWarm, requests: distinct('warm'), latencies: false })
    await server.command('gc')
    const before = await server.stats()
    log(`memory: ${TIME.memoryRequests} requests from distinct addresses for distinct usernames`)
    let peakRss = before.rss
    const sampler = setInterval(() => { server.stats().then((s) => { peakRss = Math.max(peakRss, s.rss) }, () => {}) }, 500)
    // In two halves, with a reading between: bounded structures stop growing once full, so the
    // second half should add (next to) nothing.
    const halves: LoadResult[] = []
    let half: ServerStats
    try {
      for (const share of [0.5, 0.5]) {
        const responses = Math.round(share * TIME.memoryRequests)
        halves.push(await load(undefined, { url: `${url}/token`, connections: MEMORY_CONNECTIONS, duration: TIME.deadline, responses, requests: distinct('user'), latencies: false }))
        if (halves.length === 1) {
          await server.command('gc')
          half = await server.stats()
        }
      }
    } finally {
      clearInterval(sampler)
    }
    const statuses: Record<string, number> = {}
    for (const run of halves) for (const [code, n] of Object.entries(run.statuses)) statuses[code] = (statuses[code] ?? 0) + n
    if ((statuses['503'] ?? 0) === 0) throw new Error(`the memory run: no 503 answer (got ${JSON.stringify(statuses)})`)
    await server.command('gc')
    const after = await server.stats()
    results.memory = {
      requested: TIME.memoryRequests,
      requests: Object.values(statuses).reduce((sum, n) => sum + n, 0),
      statuses,
      seconds: halves.reduce((sum, run) => sum + run.seconds, 0),
      before,
      half: half!,
      after,
      peakRss: Math.max(peakRss, after.rss)
    }
  })
}

/** /token and refresh with the Redis store, when REDIS_URL is set and this build has one. */
async function redisPart (results: Results): Promise<void> {
  const redisUrl = process.env.REDIS_URL
  if (redisUrl === undefined || redisUrl === '') {
    results.redis = { skipped: 'REDIS_URL is not set' }
    return
  }
  const exported = Object.keys(await import('fastify-jwt-auth'))
  if (!exported.some((name) => /redis/i.test(name))) {
    results.redis = { skipped: 'this build of fastify-jwt-auth has no Redis store (no Redis export)' }
    return
  }
  try {
    await withServer('redis', { TRUST_PROXY: '1', REDIS_URL: redisUrl }, async (server) => {
      const { url } = server
      // A new address per request keeps the per-address limit (30 a minute) out of the way;
      // the login counters and the limiter's counters still live in Redis.
      const fromNewAddress = (body: string): autocannon.Request[] => [{
        method: 'POST',
        setupRequest: (request) => ({ ...request, headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() }, body })
      }]
      const { maxConcurrent } = results.hashing
      log('Redis: POST /token, right credentials')
      const token = await load(server, { url: `${url}/token`, connections: 2 * maxConcurrent, duration: TIME.run, requests: fromNewAddress(RIGHT) })
      expect('POST /token with Redis', token, '200')

      const first = await login(url, { 'x-forwarded-for': nextAddress() })
      if (typeof first.refresh_token !== 'string') {
        results.redis = { token, refreshSkipped: 'the example server issues no refresh tokens' }
        return
      }
      // Each connection follows its own refresh-token family: every answer rotates the token.
      const chains: string[] = [first.refresh_token]
      while (chains.length < CONNECTIONS) chains.push((await login(url, { 'x-forwarded-for': nextAddress() })).refresh_token as string)
      let next = 0
      log('Redis: POST /token, refresh grant')
      const refresh = await load(server, {
        url: `${url}/token`,
        connections: CONNECTIONS,
        duration: TIME.run,
        setupClient: (client) => {
          let current = chains[next++ % chains.length] as string
          client.setRequests([{
            method: 'POST',
            setupRequest: (request) => ({
              ...request,
              headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() },
              body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(current)}`
            }),
            onResponse: (status, body) => {
              if (status === 200) current = (JSON.parse(body) as { refresh_token: string }).refresh_token
            }
          }])
        }
      })
      expect('the refresh grant with Redis', refresh, '200')
      results.redis = { token, refresh }
    })
  } catch (error) {
    results.redis = { error: (error as Error).message }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const int = (n: number): string => Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–'
const ms = (n: number): string => Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : '–'
const pct = (n: number): string => Number.isFinite(n) ? `${Math.round(n * 100)} %` : '–'
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`
const ratio = (n: number): string => Number.isFinite(n) ? n.toFixed(2) : '–'

function targets (r: Results): Target[] {
  const list: Target[] = []
  const check = (ok: boolean, line: string): void => { list.push({ ok, line }) }
  if (r.public !== undefined && r.protected !== undefined) {
    const x = rate(r.protected, '200') / rate(r.public, '200')
    check(x >= 0.9, `GET /protected req/s >= 0.90 × GET /public: ${ratio(x)} (${int(rate(r.protected, '200'))} vs ${int(rate(r.public, '200'))})`)
  }
  if (r.token !== undefined && r.rawArgon2PerSecond !== undefined) {
    const x = rate(r.token, '200') / r.rawArgon2PerSecond
    check(x >= 0.85, `POST /token req/s >= 0.85 × raw argon2.verify: ${ratio(x)} (${rate(r.token, '200').toFixed(1)} vs ${r.rawArgon2PerSecond.toFixed(1)})`)
  }
  if (r.flood !== undefined) {
    check(r.flood.eld.max < 20, `event-loop delay max under the login flood < 20 ms: ${ms(r.flood.eld.max)} ms`)
  }
  if (r.flood !== undefined && r.idle !== undefined) {
    const x = r.flood.probe.p99 / r.idle.probe.p99
    check(x <= 5, `GET /protected p99 under the login flood <= 5 × idle: ${ratio(x)} (${ms(r.flood.probe.p99)} vs ${ms(r.idle.probe.p99)} ms)`)
  }
  if (r.bruteForceOneIp !== undefined && r.publicThrottled !== undefined) {
    const x = rate(r.bruteForceOneIp, '429') / rate(r.publicThrottled, '200')
    check(x >= 0.5, `429 answers/s during brute force from one address >= 0.5 × GET /public: ${ratio(x)} (${int(rate(r.bruteForceOneIp, '429'))} vs ${int(rate(r.publicThrottled, '200'))})`)
  }
  if (r.memory !== undefined) {
    const growth = r.memory.after.rss - r.memory.before.rss
    check(growth < 50 * 2 ** 20, `RSS growth over ${int(r.memory.requested)} distinct keys < 50 MB: ${mb(growth)}`)
  }
  return list
}

/**
 * Figures reported beside the targets. Brute force from many addresses is not held to the 429
 * target: its answer needs the username, so the body is read first, and Fastify's own cost for a
 * form POST is measured beside it so that the gap to the target can be read.
 */
function notes (r: Results): string[] {
  if (r.bruteForceManyIps === undefined || r.formFloor === undefined || r.publicThrottled === undefined) return []
  const base = rate(r.publicThrottled, '200')
  return [
    `NOTE 429 answers/s during brute force from many addresses: ${ratio(rate(r.bruteForceManyIps, '429') / base)} × GET /public; ` +
    `a bare Fastify form POST answered 429: ${ratio(rate(r.formFloor, '429') / base)} × GET /public (not a target: the username is in the body)`
  ]
}

function table (r: Results): string {
  const rows: string[] = []
  /** One autocannon run: answers of `status` per second, latency, and what the server spent. */
  const loadRow = (label: string, result: LoadResult, status: string, notes: string, perSecond = int(rate(result, status))): void => {
    rows.push(`| ${label} | ${perSecond} | ${ms(result.p50)} | ${ms(result.p99)} | ${pct(result.serverCpu)} | ${int(result.cpuPerRequest)} | ${notes} |`)
  }
  const row = (label: string, perSecond: string, p50: string, p99: string, notes: string): void => {
    rows.push(`| ${label} | ${perSecond} | ${p50} | ${p99} | | | ${notes} |`)
  }
  const vsPublic = (n: number, base = r.public): string => `${ratio(n / (base === undefined ? Number.NaN : rate(base, '200')))} × /public`
  const h = r.hashing
  if (r.public !== undefined) loadRow('`GET /public`', r.public, '200', `${CONNECTIONS} connections; in turns with the two rows below`)
  if (r.publicWithToken !== undefined) {
    loadRow('`GET /public`, with the same `Authorization` header', r.publicWithToken, '200',
      `${vsPublic(rate(r.publicWithToken, '200'))}; the token's bytes, parsed by Node, read by no one`)
  }
  if (r.protected !== undefined) loadRow('`GET /protected`, valid token', r.protected, '200', vsPublic(rate(r.protected, '200')))
  if (r.forged !== undefined) loadRow('`GET /protected`, forged token → 401', r.forged, '401', 'a new forged signature each time')
  if (r.rawArgon2PerSecond !== undefined) {
    row(`raw \`argon2.verify\`, ${h.parameters}, ${h.maxConcurrent} at once`, r.rawArgon2PerSecond.toFixed(1), '', '', 'in the bench process, server idle')
  }
  if (r.token !== undefined) {
    loadRow('`POST /token`, right credentials → 200', r.token, '200',
      `${2 * h.maxConcurrent} connections; ${ratio(rate(r.token, '200') / (r.rawArgon2PerSecond ?? Number.NaN))} × raw argon2`, rate(r.token, '200').toFixed(1))
  }
  const probeRate = int(1000 / PROBE_INTERVAL_MS)
  if (r.idle !== undefined) {
    row('`GET /protected` probe, idle', probeRate, ms(r.idle.probe.p50), ms(r.idle.probe.p99),
      `event-loop delay p99 ${ms(r.idle.eld.p99)} ms, max ${ms(r.idle.eld.max)} ms`)
  }
  if (r.flood !== undefined) {
    const f = r.flood
    row('`GET /protected` probe, during the login flood', probeRate, ms(f.probe.p50), ms(f.probe.p99),
      `event-loop delay p99 ${ms(f.eld.p99)} ms, max ${ms(f.eld.max)} ms`)
    loadRow(`login flood: \`POST /token\`, ${int(f.offered)} a second from ${f.connections} connections`, f.token, '200',
      `${int(rate(f.token, '200'))} × 200 and ${int(rate(f.token, '503'))} × 503 per second`, int(rate(f.token, '200') + rate(f.token, '503')))
  }
  if (r.publicThrottled !== undefined) {
    loadRow('`GET /public`, on the server with the default limits', r.publicThrottled, '200', 'measured in turns with the two rows below')
  }
  if (r.bruteForceOneIp !== undefined) {
    loadRow('brute force on one username, one address → 429', r.bruteForceOneIp, '429',
      `${vsPublic(rate(r.bruteForceOneIp, '429'), r.publicThrottled)}; the per-address limit`)
  }
  if (r.bruteForceManyIps !== undefined) {
    loadRow('brute force on one username, a new address each time → 429', r.bruteForceManyIps, '429',
      `${vsPublic(rate(r.bruteForceManyIps, '429'), r.publicThrottled)}; the per-username backoff`)
  }
  if (r.formFloor !== undefined) {
    loadRow('bare Fastify form `POST` answered 429, a new address each time', r.formFloor, '429',
      `${vsPublic(rate(r.formFloor, '429'), r.publicThrottled)}; no plugin: the floor for the row above`)
  }
  const redis = r.redis
  if (redis !== undefined && 'token' in redis) {
    loadRow('Redis store: `POST /token`, right credentials → 200', redis.token, '200', 'a new address each time', rate(redis.token, '200').toFixed(1))
    if (redis.refresh !== undefined) loadRow('Redis store: `POST /token`, refresh grant → 200', redis.refresh, '200', `${CONNECTIONS} token families, each rotated on every call`)
  }
  const lines = [
    '| measurement | req/s | p50 ms | p99 ms | server CPU | server µs/req | notes |',
    '|---|--:|--:|--:|--:|--:|---|',
    ...rows
  ]
  if (r.memory !== undefined) {
    const m = r.memory
    lines.push('', `Memory over ${int(m.requests)} \`POST /token\` requests from distinct addresses for distinct usernames ` +
      `(${int(m.requests / m.seconds)} req/s; ${Object.entries(m.statuses).map(([s, n]) => `${int(n)} × ${s}`).join(', ')}), after a full GC:`, '',
    `| | before | after ${int(m.requested / 2)} | after ${int(m.requested)} | growth |`, '|---|--:|--:|--:|--:|',
    `| RSS | ${mb(m.before.rss)} | ${mb(m.half.rss)} | ${mb(m.after.rss)} | ${mb(m.after.rss - m.before.rss)} |`,
    `| heap used | ${mb(m.before.heapUsed)} | ${mb(m.half.heapUsed)} | ${mb(m.after.heapUsed)} | ${mb(m.after.heapUsed - m.before.heapUsed)} |`,
    '', `Peak RSS during the run: ${mb(m.peakRss)}.`)
  }
  if (redis !== undefined && 'skipped' in redis) lines.push('', `Redis store: skipped: ${redis.skipped}.`)
  if (redis !== undefined && 'refreshSkipped' in redis && redis.refreshSkipped !== undefined) lines.push('', `Redis refresh grant: skipped: ${redis.refreshSkipped}.`)
  if (redis !== undefined && 'error' in redis) lines.push('', `Redis store: could not run: ${redis.error}`)
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------

async function main (): Promise<number> {
  const deadline = setTimeout(() => {
    log(`stopped: still running after ${TIME.deadline} s`)
    process.exit(1)
  }, TIME.deadline * 1000)
  deadline.unref()

  const maxConcurrent = defaultHashingConcurrency()
  const results: Results = {
    machine: machine(),
    smoke: SMOKE,
    // The example server uses the plugin's defaults: these are the bounds it runs with (the
    // queue's default is documented as 8 × maxConcurrent).
    hashing: { maxConcurrent, maxQueue: 8 * maxConcurrent, parameters: 'the plugin\'s defaults' },
    targets: []
  }
  if (ONLY.has('open')) await openServerParts(results)
  if (ONLY.has('throttled')) await throttledServerParts(results)
  if (ONLY.has('memory')) await memoryPart(results)
  if (ONLY.has('redis')) await redisPart(results)
  results.targets = targets(results)

  const m = results.machine
  const report = [
    `## fastify-jwt-auth bench${SMOKE ? ' (smoke run: a second per part; the figures mean nothing)' : ''}`,
    '',
    `${String(m.cpus)} × ${String(m.cpu)}, Node ${String(m.node)}, ${String(m.platform)}; load average at start ${(m.loadAverageAtStart as number[]).join(' ')}; ${String(m.date)}`,
    '',
    table(results),
    '',
    ...results.targets.map((t) => `${t.ok ? 'PASS' : 'FAIL'} ${t.line}`),
    ...notes(results)
  ].join('\n')
  process.stdout.write(report + '\n')

  mkdirSync(OUT_DIR, { recursive: true })
  const file = join(OUT_DIR, `bench-${String(m.date).replace(/[:.]/g, '-')}${SMOKE ? '-smoke' : ''}.json`)
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n')
  writeFileSync(join(OUT_DIR, SMOKE ? 'latest-smoke.json' : 'latest.json'), JSON.stringify(results, null, 2) + '\n')
  log(`results written to ${file}`)
  return results.redis !== undefined && 'error' in results.redis ? 1 : 0
}

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  log(`could not run: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
}).finally(() => {
  for (const child of children) child.kill('SIGKILL')
})
