/*
 * What a run prints and writes: the markdown table, the PASS/FAIL line of each target (their
 * text is what test/bench.test.ts and readers look for), the NOTE lines, and the JSON files.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { rate, type LoadResult } from './harness/load.js'
import { CONNECTIONS, PROBE_INTERVAL_MS } from './harness/settings.js'
import type { Results, Target } from './results.js'

const int = (n: number): string => Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–'
const ms = (n: number): string => Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : '–'
const pct = (n: number): string => Number.isFinite(n) ? `${Math.round(n * 100)} %` : '–'
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`
const ratio = (n: number): string => Number.isFinite(n) ? n.toFixed(2) : '–'

/** The targets, each a ratio of figures from the same run (or a bound), for the parts that ran. */
export function targets (r: Results): Target[] {
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
    const memoryProtected = r.protected !== undefined && r.public !== undefined ? `; memory store: ${ratio(rate(r.protected, '200') / rate(r.public, '200'))} × /public` : ''
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

/** The whole report for stdout: heading, machine, table, PASS/FAIL lines and notes. */
export function render (results: Results): string {
  const m = results.machine
  return [
    `## fastify-jwt-auth bench${results.smoke ? ' (smoke run: a second per part; the figures mean nothing)' : ''}`,
    '',
    `${String(m.cpus)} × ${String(m.cpu)}, Node ${String(m.node)}, ${String(m.platform)}; load average at start ${(m.loadAverageAtStart as number[]).join(' ')}; ${String(m.date)}`,
    '',
    table(results),
    '',
    ...results.targets.map((t) => `${t.ok ? 'PASS' : 'FAIL'} ${t.line}`),
    ...notes(results)
  ].join('\n')
}

/** Writes the results as JSON, under the run's date and as latest(-smoke).json; returns the dated file. */
export function writeResults (results: Results, outDir: string): string {
  mkdirSync(outDir, { recursive: true })
  const file = join(outDir, `bench-${String(results.machine.date).replace(/[:.]/g, '-')}${results.smoke ? '-smoke' : ''}.json`)
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n')
  writeFileSync(join(outDir, results.smoke ? 'latest-smoke.json' : 'latest.json'), JSON.stringify(results, null, 2) + '\n')
  return file
}
