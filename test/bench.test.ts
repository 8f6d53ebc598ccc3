import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { childEnv, redisClient } from './helper.js'

/*
 * `npm run bench` is not part of `npm test` (it takes minutes and wants a quiet machine), but its
 * smoke mode runs every part for about a second, so a change that breaks the bench, or drops one
 * of its figures or targets, fails here rather than on the day someone needs the numbers.
 */

const root = fileURLToPath(new URL('..', import.meta.url))

// The bench pins servers to a core with taskset where it can (Linux, two CPUs or more).
const canPin = process.platform === 'linux' && spawnSync('taskset', ['-V']).error === undefined && os.availableParallelism() >= 2

/** The 50-connection flood's targets, for one way of running the servers. */
const floodTargets = (mode: string): string[] => [
  `logins/s under a 50-connection /token flood (${mode}) >= 0.85 × raw argon2.verify: `,
  `GET /protected p99 under a 50-connection /token flood (${mode}) <= 3 × its p50: `,
  `GET /protected p99 under a 50-connection /token flood (${mode}) <= the hand-written peer's: `
]

// Every target of the issues, by the start of its line.
const TARGETS = [
  'GET /protected req/s >= 0.95 × bare Fastify GET /public: ',
  'GET /protected req/s >= 0.90 × GET /public: ',
  'POST /token req/s >= 0.85 × raw argon2.verify: ',
  'event-loop delay max under the login flood < 20 ms: ',
  'GET /protected p99 under the login flood <= 5 × idle: ',
  ...floodTargets('unpinned'),
  ...(canPin ? floodTargets('server on one core') : []),
  '429 answers/s during brute force from one address >= 0.5 × GET /public: ',
  'RSS growth over 2,000 distinct keys < 50 MB: '
]

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

t.setTimeout(240_000)

t.test('the bench in smoke mode prints its table and every PASS/FAIL line, and writes them as JSON', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'fastify-token-auth-bench-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  // Not coverage-tracked, like the example server: the bench is a separate program. REDIS_URL
  // and DATABASE_URL go through, so that the Redis and PostgreSQL parts run (or say why not)
  // wherever the tests have them.
  const env = childEnv()
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts'], {
    cwd: root,
    env: { ...env, BENCH_SMOKE: '1', BENCH_OUT: out },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))

  t.equal(code, 0, `the bench ran (stderr: ${stderr.slice(-2000)})`)
  t.match(stdout, /^\| measurement \| req\/s \| p50 ms \| p99 ms \| server CPU \| server µs\/req \| notes \|$/m, 'the markdown table')
  const floods = ['unpinned', ...(canPin ? ['server on one core'] : [])].flatMap((mode) => [`raw \`argon2.verify\` (${mode})`,
    `bare Fastify \`GET /public\`, 50 connections, no flood (${mode})`, `\`GET /protected\`, 50 connections, no flood, ours (${mode})`,
    ...['ours', 'hand-written peer'].flatMap((who) => [`50-connection \`POST /token\` flood, ${who} (${mode}): logins`, `\`GET /protected\` probe during it, ${who} (${mode})`,
      `\`GET /protected\`, 50 connections, during the flood again, ${who} (${mode})`])])
  for (const row of ['bare Fastify `GET /public`, no plugin', '`GET /public`', '`GET /public`, with the same `Authorization` header', ...floods, '`GET /public`, on the server with the default limits', '`GET /protected`, valid token', '`GET /protected`, forged token → 401', 'raw `argon2.verify`',
    '`POST /token`, right credentials → 200', '`GET /protected` probe, idle', '`GET /protected` probe, during the login flood',
    'login flood: `POST /token`', 'brute force on one username, one address → 429', 'brute force on one username, a new address each time → 429',
    'bare Fastify form `POST` answered 429, a new address each time']) {
    t.match(stdout, new RegExp(`^\\| ${escape(row)}.*\\|$`, 'm'), row)
  }
  t.match(stdout, /^\| RSS \|( -?[\d.]+ MB \|){4}$/m, 'RSS before, half-way, after, and the growth')
  t.match(stdout, /^\| heap used \| /m, 'heap before and after')
  if (process.env.REDIS_URL === undefined || process.env.REDIS_URL === '') {
    t.match(stdout, /^Redis store: skipped: REDIS_URL is not set\.$/m, 'the Redis part says why it did not run')
  } else {
    // Either the build has no Redis store yet and the bench says so, or both Redis rows are there.
    t.match(stdout, /^(Redis store: skipped: this build of fastify-token-auth has no Redis store|\| Redis store: `POST \/token`, right credentials → 200 \|)/m,
      'the Redis part ran, or said why not')
    t.notMatch(stdout, /^Redis store: could not run/m)
    // It ran under a key prefix of its own, and deleted its keys afterwards.
    const prefix = `fastify-token-auth-bench-${child.pid}:`
    const redis = await redisClient(t, prefix)
    t.same(await redis.keys(`${prefix}*`), [], 'no key of the bench\'s is left in Redis')
  }
  if (process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '') {
    t.match(stdout, /^PostgreSQL store: skipped: DATABASE_URL is not set\.$/m, 'the PostgreSQL part says why it did not run')
  } else {
    for (const row of ['`POST /token`, right credentials → 200', '`POST /token`, refresh grant → 200', '`GET /protected`, revocable access tokens']) {
      t.match(stdout, new RegExp(`^\\| PostgreSQL store: ${escape(row)} \\|.*\\|$`, 'm'), `PostgreSQL: ${row}`)
    }
    t.match(stdout, /× \/public on the same server; memory store: [\d.]+ × \/public \|$/m, 'read beside the memory store, as ratios')
    t.notMatch(stdout, /^PostgreSQL store: could not run/m)
  }
  for (const target of TARGETS) t.match(stdout, new RegExp(`^(PASS|FAIL) ${escape(target)}\\S`, 'm'), target)
  if (!canPin) t.match(stdout, /^NOTE the 50-connection flood with the server on one core was skipped: /m, 'says why it could not pin')
  for (const mode of ['unpinned', ...(canPin ? ['server on one core'] : [])]) {
    t.match(stdout, new RegExp(`^NOTE GET /protected probe under a 50-connection /token flood \\(${mode}\\): p99 ÷ p50 [\\d.]+ \\([\\d.]+ vs [\\d.]+ ms\\), p99 ÷ the hand-written peer's [\\d.]+`, 'm'),
      `the probe's tail under the flood (${mode}), beside the target's closed-loop figures`)
    t.match(stdout, new RegExp(`^NOTE p99 ÷ p50 from 50 connections with no flood \\(${mode}\\): bare Fastify GET /public [\\d.]+ \\([\\d.]+ vs [\\d.]+ ms\\), GET /protected [\\d.]+ \\([\\d.]+ vs [\\d.]+ ms\\); GET /protected p99 under the flood ÷ with no flood [\\d.]+:`, 'm'),
      `the same load's tail with no flood and no plugin (${mode})`)
  }
  t.match(stdout, /^NOTE req\/s on each process alone: bare GET \/public [\d,]+ \/ [\d,]+ \(lowest ÷ highest [\d.]+\), GET \/protected [\d,]+ \/ [\d,]+ \(lowest ÷ highest [\d.]+\): .* pooled over the 2$/m,
    'the overhead figures pooled over two processes of each server, and each process alone')
  t.match(stdout, /^NOTE GET \/protected probe p99 ÷ p50 with the server idle: [\d.]+ \([\d.]+ vs [\d.]+ ms\)/m, 'the idle tail the flood targets are read against')
  t.match(stdout, /^NOTE 429 answers\/s during brute force from many addresses: [\d.]+ × GET \/public; a bare Fastify form POST answered 429: [\d.]+ × GET \/public/m,
    'the many-address figure, beside the floor it is read against')

  const json = JSON.parse(readFileSync(join(out, 'latest-smoke.json'), 'utf8'))
  t.equal(json.smoke, true)
  t.equal(json.targets.length, TARGETS.length)
  t.type(json.machine.cpus, 'number')
  t.type(json.memory.after.rss, 'number')
  t.type(json.flood.eld.max, 'number')
  t.type(json.flood50.ours.eld.p99, 'number', 'the event-loop delay during the 50-connection flood')
  t.type(json.flood50.ours.protectedLoad.p99, 'number', 'GET /protected from 50 connections during the flood')
  t.type(json.flood50.peer.protectedLoad.p50, 'number')
  t.type(json.flood50.calm.bare.p99, 'number', 'the bare app under the same load with no flood')
  t.type(json.flood50.calm.ours.p50, 'number')
  t.equal(json.overhead.processes, 2)
  t.equal(json.overhead.bareEach.length, 2, 'the bare app on each process')
  t.equal(json.overhead.protectedEach.length, 2)

  // The chart beside the JSON: one bar, and a PASS or FAIL, per target.
  const svg = readFileSync(join(out, 'latest-smoke.svg'), 'utf8')
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.equal(svg.match(/<rect x=/g)?.length, TARGETS.length, 'a bar per target')
  t.equal(svg.match(/ (PASS|FAIL)<\/text>/g)?.length, TARGETS.length)
})
