/*
 * What a run prints and writes: the markdown table, the PASS/FAIL line of each target and the
 * NOTE lines (bench/targets.ts), and the JSON and SVG files.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { chart } from './chart.js'
import { rate, type LoadResult } from './harness/load.js'
import { CONNECTIONS, PROBE_INTERVAL_MS } from './harness/settings.js'
import type { Results } from './results.js'
import { FLOOD_CONNECTIONS, type FloodFigures, type FloodRun } from './scenarios/flood.js'
import { floodModes, int, mb, ms, notes, ratio, us } from './targets.js'

const pct = (n: number): string => Number.isFinite(n) ? `${Math.round(n * 100)} %` : '–'

function table (r: Results): string {
  const rows: string[] = []
  /** One autocannon run: answers of `status` per second, latency, and what the server spent. */
  const loadRow = (label: string, result: LoadResult, status: string, notes: string, perSecond = int(rate(result, status))): void => {
    rows.push(`| ${label} | ${perSecond} | ${ms(result.p50)} | ${ms(result.p99)} | ${pct(result.serverCpu)} | ${us(result.cpuPerRequest)} | ${notes} |`)
  }
  const row = (label: string, perSecond: string, p50: string, p99: string, notes: string): void => {
    rows.push(`| ${label} | ${perSecond} | ${p50} | ${p99} | | | ${notes} |`)
  }
  const vsPublic = (n: number, base = r.overhead?.public): string => `${ratio(n / (base === undefined ? Number.NaN : rate(base, '200')))} × /public`
  const h = r.hashing
  const o = r.overhead
  if (o !== undefined) {
    const on = o.pinning === 'one core' ? 'server on one core, client on another' : 'unpinned'
    loadRow('bare Fastify `GET /public`, no plugin', o.bare, '200',
      `${CONNECTIONS} connections, ${on}; ${o.processes} processes of each server, pooled; in turns with the three rows below`)
    loadRow('`GET /public`', o.public, '200', vsPublic(rate(o.public, '200'), o.bare).replace('/public', 'bare /public'))
    loadRow('`GET /public`, with the same `Authorization` header', o.publicWithToken, '200',
      `${vsPublic(rate(o.publicWithToken, '200'))}; the token's bytes, parsed by Node, read by no one`)
    loadRow('`GET /protected`, valid token', o.protected, '200',
      `${vsPublic(rate(o.protected, '200'))}, ${vsPublic(rate(o.protected, '200'), o.bare).replace('/public', 'bare /public')}; revocable access tokens on`)
  }
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
  for (const [mode, flood] of floodModes(r)) {
    if (flood !== undefined && !('skipped' in flood)) floodRows(row, loadRow, mode, flood)
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
  const pg = r.postgres
  if (pg !== undefined && 'token' in pg) {
    // Ratios to the memory store's figures (the open scenario) and Redis's, from this run.
    const vs = (n: number, base: LoadResult | undefined, name: string): string => base === undefined ? '' : `; ${ratio(n / rate(base, '200'))} × ${name}`
    const redisRun = redis !== undefined && 'token' in redis ? redis : undefined
    loadRow('PostgreSQL store: `POST /token`, right credentials → 200', pg.token, '200',
      `a new address each time${vs(rate(pg.token, '200'), redisRun?.token, 'Redis')}${vs(rate(pg.token, '200'), r.token, 'memory (no rate limit)')}`, rate(pg.token, '200').toFixed(1))
    loadRow('PostgreSQL store: `POST /token`, refresh grant → 200', pg.refresh, '200',
      `${CONNECTIONS} token families, each rotated on every call${vs(rate(pg.refresh, '200'), redisRun?.refresh, 'Redis')}`)
    const pgProtected = rate(pg.protected, '200') / rate(pg.public, '200')
    const memoryProtected = r.overhead !== undefined ? `; memory store: ${ratio(rate(r.overhead.protected, '200') / rate(r.overhead.public, '200'))} × /public` : ''
    loadRow('PostgreSQL store: `GET /protected`, revocable access tokens', pg.protected, '200', `${ratio(pgProtected)} × /public on the same server${memoryProtected}`)
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
  if (pg !== undefined && 'skipped' in pg) lines.push('', `PostgreSQL store: skipped: ${pg.skipped}.`)
  if (pg !== undefined && 'error' in pg) lines.push('', `PostgreSQL store: could not run: ${pg.error}`)
  return lines.join('\n')
}

type Row = (label: string, perSecond: string, p50: string, p99: string, notes: string) => void
type LoadRow = (label: string, result: LoadResult, status: string, notes: string) => void

/** The 50-connection flood, on our server and on the hand-written peer. */
function floodRows (row: Row, loadRow: LoadRow, mode: string, f: FloodFigures): void {
  // BENCH_CLIENT=wrk: said on each row that wrk timed, since every other row is autocannon's.
  const by = f.timedBy === 'wrk' ? '; sent and timed by wrk' : ''
  loadRow(`bare Fastify \`GET /public\`, ${FLOOD_CONNECTIONS} connections, no flood (${mode})`, f.calm.bare, '200',
    `no plugin and nothing flooding: the tail this machine gives the load of the rows below; in turns with the next row${by}`)
  loadRow(`\`GET /protected\`, ${FLOOD_CONNECTIONS} connections, no flood, ours (${mode})`, f.calm.ours, '200',
    `the same load with nothing flooding${by}`)
  row(`raw \`argon2.verify\` (${mode})`, f.rawArgon2PerSecond.toFixed(1), '', '', 'the most logins a second the server\'s CPUs can hash; in turns with the two floods below')
  for (const [who, run] of [['ours', f.ours], ['hand-written peer', f.peer]] as Array<[string, FloodRun]>) {
    const answers = Object.entries(run.token.statuses).map(([s, n]) => `${int(n / run.token.seconds)} × ${s}`).join(', ')
    row(`${FLOOD_CONNECTIONS}-connection \`POST /token\` flood, ${who} (${mode}): logins`, run.loginsPerSecond.toFixed(1), '', '',
      `${ratio(run.loginsPerSecond / f.rawArgon2PerSecond)} × raw argon2, ${f.loginTurns.count} turns of ${f.loginTurns.seconds} s each; answers a second in the probed flood: ${answers}`)
    row(`\`GET /protected\` probe during it, ${who} (${mode})`, int(1000 / PROBE_INTERVAL_MS), ms(run.probe.p50), ms(run.probe.p99),
      `event-loop delay p50 ${ms(run.eld.p50)} ms, p99 ${ms(run.eld.p99)} ms, max ${ms(run.eld.max)} ms`)
    loadRow(`\`GET /protected\`, ${FLOOD_CONNECTIONS} connections, during the flood again, ${who} (${mode})`, run.protectedLoad, '200',
      `each connection sends its next request when answered, as the issue measured it; server CPU includes the flood's${by}`)
  }
}

/** The whole report for stdout: heading, machine, table, PASS/FAIL lines and notes. */
export function render (results: Results): string {
  const m = results.machine
  return [
    `## fastify-token-auth bench${results.smoke ? ' (smoke run: a second per part; the figures mean nothing)' : ''}`,
    '',
    `${String(m.cpus)} × ${String(m.cpu)}, Node ${String(m.node)}, ${String(m.platform)}; load average at start ${(m.loadAverageAtStart as number[]).join(' ')}; ${String(m.date)}`,
    '',
    table(results),
    '',
    ...results.targets.map((t) => `${t.ok ? 'PASS' : 'FAIL'} ${t.line}`),
    ...notes(results)
  ].join('\n')
}

/**
 * Writes the results as JSON and the chart as SVG, under the run's date and as
 * latest(-smoke).json / .svg; returns the dated JSON file.
 */
export function writeResults (results: Results, outDir: string): string {
  mkdirSync(outDir, { recursive: true })
  const base = `bench-${String(results.machine.date).replace(/[:.]/g, '-')}${results.smoke ? '-smoke' : ''}`
  const latest = results.smoke ? 'latest-smoke' : 'latest'
  const json = JSON.stringify(results, null, 2) + '\n'
  const svg = chart(results)
  for (const name of [base, latest]) {
    writeFileSync(join(outDir, `${name}.json`), json)
    writeFileSync(join(outDir, `${name}.svg`), svg)
  }
  return join(outDir, `${base}.json`)
}
