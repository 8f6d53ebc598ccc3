import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { load } from '../bench/harness/load.js'
import { wrkUnavailable } from '../bench/harness/wrk.js'
import { childEnv } from './helper.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/*
 * BENCH_CLIENT=wrk: the bench's flood loads sent and timed by wrk (bench/harness/wrk.ts) must
 * come back as autocannon's do: answers by status, and the p50 and p99 of every response time,
 * rebuilt from wrk's quantiles. Skipped, with the reason, where wrk is not installed.
 */
t.test('a load sent by wrk counts its answers by status and keeps their tail', { skip: wrkUnavailable() ?? false }, async (t) => {
  // One request in ten is answered 503 after 150 ms, the rest 200 at once: the slow tenth is
  // the tail, and its status is counted apart.
  let served = 0
  const headers = new Set<string | undefined>()
  const server = createServer((request, response) => {
    headers.add(request.headers.authorization)
    request.resume()
    if (++served % 10 === 0) setTimeout(() => { response.writeHead(503).end('{}') }, 150)
    else response.writeHead(200).end('{}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const { port } = server.address() as AddressInfo

  const result = await load(undefined, {
    url: `http://127.0.0.1:${port}/protected`, headers: { authorization: 'Bearer a.b.c' }, connections: 10, duration: 1, client: 'wrk'
  })

  t.same([...headers], ['Bearer a.b.c'], 'every request carried the header, as given')
  t.same(Object.keys(result.statuses).sort(), ['200', '503'])
  const ok = result.statuses['200'] ?? 0
  const slow = result.statuses['503'] ?? 0
  t.ok(ok + slow > 100 && ok + slow <= served, `answers counted (${ok + slow} of ${served} served)`)
  // wrk stops with some answers still on their way: the slow ones are a tenth of those it got, give or take ten.
  t.ok(Math.abs(slow - (ok + slow) / 10) <= 10, `a tenth answered 503 (${slow} of ${ok + slow})`)
  t.equal(result.errors, 0)
  t.ok(result.seconds >= 0.9 && result.seconds < 1.5, `about a second (${result.seconds} s)`)
  t.ok(result.p50 < 100, `the median is a fast answer (${result.p50} ms)`)
  t.ok(result.p99 >= 150, `the p99 is a slow one (${result.p99} ms)`)
})

/** The bench run with `env` added to the suite's, until it exits: its status and what it wrote. */
async function bench (env: Record<string, string>): Promise<{ code: number | null, stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts'], { cwd: root, env: { ...childEnv(), ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  // A bench that went on to measure would run for minutes: stopped, it fails the checks below.
  const stop = setTimeout(() => { child.kill('SIGKILL') }, 15_000)
  child.on('exit', () => { clearTimeout(stop) })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, stderr }
}

t.test('a BENCH_CLIENT that cannot run stops the bench before it measures anything, and says why', async (t) => {
  const unknown = await bench({ BENCH_CLIENT: 'ab' })
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, 'BENCH_CLIENT must be autocannon or wrk, not "ab"')
  // An empty PATH folder: no wrk to be found (Node itself is started by its full path).
  const empty = mkdtempSync(join(tmpdir(), 'fastify-token-auth-no-wrk-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const missing = await bench({ BENCH_CLIENT: 'wrk', PATH: empty })
  t.equal(missing.code, 1)
  t.match(missing.stderr, 'BENCH_CLIENT=wrk: wrk is not installed')
  for (const { stderr } of [unknown, missing]) t.equal(stderr.trim().split('\n').length, 1, 'that line only: nothing started, nothing measured')
})
