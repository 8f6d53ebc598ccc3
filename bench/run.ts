/*
 * npm run bench: what the plugin costs per request, and how it behaves under a login flood.
 *
 * The server under test is the example server (bench/server.ts runs `buildServer(env)` from
 * examples/server.ts) in a process of its own; this process drives it over 127.0.0.1 with
 * autocannon. Every figure is measured in the same run, and the targets are ratios of those
 * figures, so they mean the same on any machine. The bench prints a markdown table and the
 * PASS/FAIL lines, and writes everything as JSON to bench-results/ (git-ignored).
 *
 *   npm run bench                    # the full run (bench/README.md says how long)
 *   BENCH_SMOKE=1 npm run bench      # a second or so per part: checks the script, not the numbers
 *   BENCH_ONLY=overhead,flood npm run bench  # some parts only: overhead, open, flood, throttled, memory, redis, postgres
 *   BENCH_CPU_PROF=some/dir npm run bench    # every server writes a CPU profile there (--cpu-prof)
 *   REDIS_URL=redis://127.0.0.1:6379 npm run bench   # adds the Redis store, where the build has one
 *   DATABASE_URL=postgres://… npm run bench          # adds the PostgreSQL store, where the build has one
 *   BENCH_OUT=some/dir npm run bench                 # where the JSON goes (default bench-results)
 *   BENCH_CLIENT=wrk npm run bench   # the flood's 50-connection loads sent and timed by wrk, as the issue measured them
 *
 * This file only reads those settings, runs the scenarios (bench/scenarios/) in order and
 * reports (bench/report.ts); bench/README.md explains each scenario and target.
 *
 * Exit status: 0 when the bench ran (whether or not every target was met), 1 when it could not.
 */
import { DEFAULTS, defaultHashingConcurrency } from './harness/internals.js'
import { log } from './harness/log.js'
import { machine } from './harness/machine.js'
import { killServers } from './harness/server-process.js'
import { settings } from './harness/settings.js'
import { wrkUnavailable } from './harness/wrk.js'
import { render, writeResults } from './report.js'
import type { Results } from './results.js'
import { runFlood } from './scenarios/flood.js'
import { runMemory } from './scenarios/memory.js'
import { runOpen } from './scenarios/open.js'
import { runPostgres } from './scenarios/postgres.js'
import { runOverhead } from './scenarios/overhead.js'
import { runRedis } from './scenarios/redis.js'
import { runThrottled } from './scenarios/throttled.js'
import { targets } from './targets.js'

/** BENCH_CLIENT=wrk: what sends and times the flood scenario's 50-connection loads (autocannon by default). */
const CLIENT = process.env.BENCH_CLIENT === undefined || process.env.BENCH_CLIENT === '' ? 'autocannon' : process.env.BENCH_CLIENT
const SETTINGS = settings(process.env.BENCH_SMOKE === '1', CLIENT === 'wrk' ? 'wrk' : 'autocannon')
/** BENCH_ONLY=overhead,open,flood,throttled,memory,redis,postgres runs some parts only (for working on one of them). */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'overhead,open,flood,throttled,memory,redis,postgres').split(',').map((part) => part.trim()))
const OUT_DIR = process.env.BENCH_OUT ?? 'bench-results'

async function main (): Promise<number> {
  // Asked for by name, a client that cannot run stops the bench rather than being swapped for another.
  if (CLIENT !== 'autocannon' && CLIENT !== 'wrk') {
    log(`BENCH_CLIENT must be autocannon or wrk, not ${JSON.stringify(CLIENT)}`)
    return 1
  }
  const missing = CLIENT === 'wrk' ? wrkUnavailable() : undefined
  if (missing !== undefined) {
    log(`BENCH_CLIENT=wrk: ${missing}`)
    return 1
  }
  const deadline = setTimeout(() => {
    log(`stopped: still running after ${SETTINGS.time.deadline} s`)
    process.exit(1)
  }, SETTINGS.time.deadline * 1000)
  deadline.unref()

  const maxConcurrent = defaultHashingConcurrency()
  const results: Results = {
    machine: machine(),
    smoke: SETTINGS.smoke,
    // The example server uses the plugin's defaults: these are the bounds it runs with.
    hashing: { maxConcurrent, maxQueue: DEFAULTS.password.maxQueue, maxWait: DEFAULTS.password.maxWait, parameters: 'the plugin\'s defaults' },
    targets: []
  }
  if (ONLY.has('overhead')) results.overhead = await runOverhead(SETTINGS)
  if (ONLY.has('open')) {
    const { figures, argon2Parameters } = await runOpen(SETTINGS, results.hashing)
    Object.assign(results, figures)
    results.hashing.parameters = argon2Parameters
  }
  if (ONLY.has('flood')) {
    results.flood50 = await runFlood(SETTINGS, results.hashing, false)
    results.flood50Pinned = await runFlood(SETTINGS, results.hashing, true)
  }
  if (ONLY.has('throttled')) Object.assign(results, await runThrottled(SETTINGS))
  if (ONLY.has('memory')) results.memory = await runMemory(SETTINGS, results.hashing)
  if (ONLY.has('redis')) results.redis = await runRedis(SETTINGS, results.hashing)
  if (ONLY.has('postgres')) results.postgres = await runPostgres(SETTINGS, results.hashing)
  results.targets = targets(results)

  process.stdout.write(render(results) + '\n')
  const file = writeResults(results, OUT_DIR)
  log(`results written to ${file}, the chart beside it (.svg)`)
  return [results.redis, results.postgres].some((part) => part !== undefined && 'error' in part) ? 1 : 0
}

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  log(`could not run: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
}).finally(killServers)
