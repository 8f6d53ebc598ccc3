import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { childEnv, DATABASE_URL, freePort, NO_POSTGRES } from './helper.js'

/*
 * docs/postgres.md, followed as a new user would: the start command as the page gives it (in a
 * schema of its own and on a free port), then the curl session of "Try it" as written, in bash,
 * with every `#=>` line checked against what the commands print. Only the line that names the
 * address (`API=…`) is pointed at the port the server got.
 */

const root = fileURLToPath(new URL('..', import.meta.url))
const page = readFileSync(new URL('../docs/postgres.md', import.meta.url), 'utf8')

/** The shell blocks of the section headed `heading`. */
function shellBlocks (heading: string): string[] {
  const section = page.split(/^## /m).find((s) => s.startsWith(heading + '\n'))
  if (section === undefined) throw new Error(`docs/postgres.md has no "## ${heading}"`)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string)
}

const hasTools = ['curl', 'jq', 'bash'].every((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0)

t.setTimeout(120_000)

t.test('the "Your users in PostgreSQL" walk-through, verbatim', { skip: NO_POSTGRES || (hasTools ? false : 'curl, jq or bash is missing') }, async (t) => {
  const [start] = shellBlocks('Start the example')
  t.match(start, /^DATABASE_URL=\S+ ADMIN_PASSWORD='[^']+' npm run example:postgres\n$/, 'one command starts it')
  const [session] = shellBlocks('Try it')

  const port = await freePort()
  const schema = `fja_test_docs_${process.pid}`
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 })
  admin.on('error', () => {})
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await admin.end()
  })

  // Not coverage-tracked: the example is a program of its own.
  const env = childEnv()
  const server = spawn('bash', ['-c', start!.trim()], {
    cwd: root, env: { ...env, PORT: String(port), DATABASE_SCHEMA: schema, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true
  })
  let stderr = ''
  server.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  t.teardown(() => { if (server.exitCode === null && server.pid !== undefined) process.kill(-server.pid, 'SIGTERM') })

  let up = false
  for (let i = 0; i < 300 && !up && server.exitCode === null; i++) {
    up = await fetch(`http://127.0.0.1:${port}/me`).then(() => true, () => false)
    if (!up) await sleep(100)
  }
  t.ok(up, `the example listens (stderr: ${stderr.slice(-1000)})`)

  const script = session!.replace(/^API=http:\/\/127\.0\.0\.1:3000$/m, `API=http://127.0.0.1:${port}`)
  t.not(script, session, 'the page names the address in one API= line')
  const run = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 60_000 })
  t.equal(run.status, 0, `the session runs to its end (stderr: ${run.stderr})`)
  const expected = [...session!.matchAll(/^#=> (.*)$/gm)].map((m) => m[1])
  t.ok(expected.length >= 10, 'the page shows what each command prints')
  t.same(run.stdout.trimEnd().split('\n'), expected, 'and the commands print exactly that')
})
