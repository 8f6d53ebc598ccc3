import t from 'tap'
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { childEnv } from './helper.js'

/*
 * A CI log is read from its end, below the coverage table, and the failing assertion's own lines
 * are thousands of lines above it: `npm test` repeats each failure at the end. The fixture holds
 * one assertion that fails two subtests deep, next to ones that pass.
 */

const script = fileURLToPath(new URL('../scripts/test-unit.js', import.meta.url))
// tap starts by clearing its project's .tap/coverage: run in a project of its own, not in ours.
const fixture = fileURLToPath(new URL('fixtures/failing-suite/', import.meta.url))
t.teardown(() => rmSync(`${fixture}.tap`, { recursive: true, force: true }))

const runUnit = async (...args: string[]): Promise<{ code: number | null, stdout: string }> => {
  const child = spawn(process.execPath, [script, '--disable-coverage', ...args, 'suite.mjs'], {
    cwd: fixture,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout }
}

t.test('a failed assertion is repeated after the totals, with the subtests it is in and its diff', async (t) => {
  const { code, stdout } = await runUnit()
  t.equal(code, 1, 'the run still fails')
  const totals = stdout.lastIndexOf('# { total: 3, pass: 2, fail: 1 }')
  t.ok(totals > 0, 'tap printed its totals')
  const summary = stdout.slice(totals)
  t.match(summary, '\n1 failed:\n- suite.mjs > outer > inner > one and one make three\n', 'named by its path')
  t.match(summary, /fileName: suite.mjs\n\s+lineNumber: 9\n[^]*-3\n\s+\+2\n/, 'where it is and what it found against what it wanted')
  t.notMatch(summary, '> outer\n', 'the subtests that failed because of it are not listed again')
  t.notMatch(summary, 'stack:', 'the stack is left out')
  t.notMatch(summary, 'another', 'passing subtests are not listed')
})

t.test('a passing run prints no failure list', async (t) => {
  const { code, stdout } = await runUnit('--grep=another')
  t.equal(code, 0)
  t.match(stdout, '# { total: 2, pass: 1, skip: 1 }', 'only the passing subtest ran')
  t.notMatch(stdout, 'failed:')
})
