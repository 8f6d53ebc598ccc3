import t from 'tap'
import { spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { childEnv } from './app.js'

/*
 * `npm start` never serves a stale build: the example server imports the package by name, from
 * dist/, so `npm start` must build first. Run in a copy of the repository whose dist/ is stale.
 */

const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('npm start rebuilds dist/ before the example server imports it', async (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'npm-start-'))
  t.teardown(() => rmSync(copy, { recursive: true, force: true }))
  for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json', 'lib', 'examples', 'scripts']) {
    cpSync(join(root, entry), join(copy, entry), { recursive: true })
  }
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'))
  // A stale build that would fail loudly if it were served.
  mkdirSync(join(copy, 'dist/esm'), { recursive: true })
  writeFileSync(join(copy, 'dist/esm/index.js'), 'throw new Error("the stale build was served")\n')

  const child = spawn('npm', ['start'], { cwd: copy, detached: true, env: childEnv({ PORT: '0', HOST: '127.0.0.1', JWT_SECRET: 'npm-start-test-secret-7c1e9a3f5b2d8e4a6c0f' }) })
  t.teardown(() => { try { process.kill(-(child.pid as number)) } catch {} })
  let output = ''
  const listening = await new Promise<boolean>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      if (/Server listening at/.test(output)) resolve(true)
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    child.on('exit', () => resolve(false))
  })
  t.ok(listening, 'the example server started')
  t.notMatch(output, /stale build/)
})
