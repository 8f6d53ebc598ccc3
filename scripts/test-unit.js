// Runs the tap suite. The tests against a real Redis need REDIS_URL, those against a real
// PostgreSQL DATABASE_URL (`.ci/run` sets both); without one, its tests are skipped with a
// message, and its store's lines are left out of the coverage count, so that
// `npm install && npm test` passes on a machine without Redis or PostgreSQL.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const args = process.argv.slice(2)
const excluded = []
if (!process.env.REDIS_URL) {
  console.log('REDIS_URL is not set: the Redis tests are skipped and lib/stores/redis.ts is not counted for coverage.')
  console.log('Run `REDIS_URL=redis://127.0.0.1:6379 npm test` to include them.')
  excluded.push('lib/stores/redis.ts')
}
if (!process.env.DATABASE_URL) {
  console.log('DATABASE_URL is not set: the PostgreSQL tests are skipped and lib/stores/postgres.ts is not counted for coverage.')
  console.log('Run `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test` to include them.')
  excluded.push('lib/stores/postgres.ts')
}
// Giving one --coverage-exclude replaces package.json's list: repeat its entries.
if (excluded.length > 0) {
  const { tap: { 'coverage-exclude': listed } } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  args.unshift(...[...listed, ...excluded].map((file) => `--coverage-exclude=${file}`))
}

/*
 * The suite's output is thousands of lines, and a CI log is often read from its end, below the
 * coverage table: each failed assertion is repeated there with the subtests it is in and its
 * diagnostics (diff, found, wanted, where), without the stack and the source excerpt.
 */
const DIAGNOSTIC_LINES = 20
const LEFT_OUT = new Set(['stack', 'source'])
const failures = []
const path = []
let diagnostics
const read = (line) => {
  if (diagnostics !== undefined) {
    const { indent, lines } = diagnostics
    if (line.trim() === '') return
    if (line.trimEnd() === `${indent}  ...` || !line.startsWith(`${indent}  `)) {
      diagnostics = undefined
    } else {
      const text = line.slice(indent.length + 2)
      const key = /^([\w-]+):/.exec(text)
      if (key !== null) diagnostics.skipping = LEFT_OUT.has(key[1])
      if (text !== '---' && !diagnostics.skipping && lines.length < DIAGNOSTIC_LINES) lines.push(text)
      return
    }
  }
  const subtest = /^( *)# Subtest: (.*)$/.exec(line)
  if (subtest !== null) {
    path.length = subtest[1].length / 4
    path.push(subtest[2])
    return
  }
  const failed = /^( *)not ok \d+ - (.*?)(?: # time=[\d.]+m?s)?$/.exec(line)
  if (failed !== null) {
    const failure = { names: [...path.slice(0, failed[1].length / 4), failed[2]], lines: [] }
    failures.push(failure)
    diagnostics = { indent: failed[1], lines: failure.lines, skipping: false }
  }
}

const tap = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
// On a terminal tap's own reporter already lists the failures at the end: leave it the terminal.
const child = spawn(process.execPath, [tap, ...args], { stdio: ['inherit', process.stdout.isTTY ? 'inherit' : 'pipe', 'inherit'] })
let rest = ''
child.stdout?.setEncoding('utf8')
child.stdout?.on('data', (chunk) => {
  process.stdout.write(chunk)
  const lines = (rest + chunk).split('\n')
  rest = lines.pop()
  for (const line of lines) read(line)
})
child.on('close', (code) => {
  read(rest)
  // A subtest that failed because an assertion in it did is not repeated: the assertion says it.
  const leaves = failures.filter((failure) => !failures.some((other) => other !== failure &&
    other.names.length > failure.names.length && failure.names.every((name, i) => other.names[i] === name)))
  if (leaves.length > 0) {
    console.log(`\n${leaves.length} failed:`)
    for (const { names, lines } of leaves) console.log(`- ${names.join(' > ')}\n${lines.map((line) => `    ${line}`).join('\n')}`)
  }
  process.exit(code ?? 1)
})
