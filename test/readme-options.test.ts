import t from 'tap'
import { readFileSync } from 'node:fs'
import { DEFAULTS } from '../lib/options/defaults.js'

/*
 * The README's Options table states every default the plugin has, and lib/options/defaults.ts
 * holds them: each side is checked against the other, so neither can drift. A row's Default cell
 * starts with the default as a code span, written as JSON.stringify writes it; options without a
 * plain default (a callback, a key source, a default computed at start-up) start with a phrase.
 */

// Where the option lives in the options object, for the groups DEFAULTS keeps apart because the
// option itself is `false` by default (`refreshTokens: true` turns the lifetimes on).
const OPTION_OF: Record<string, string> = {
  refreshTokenLifetimes: 'refreshTokens',
  revocableAccessTokenOptions: 'revocableAccessTokens',
  browserSessionOptions: 'browserSessions'
}

/** Every leaf of DEFAULTS by its option path, e.g. `loginThrottle.perUsername.maxDelay`. */
function leaves (value: object, path: string[] = []): Map<string, unknown> {
  const found = new Map<string, unknown>()
  for (const [key, inner] of Object.entries(value)) {
    const name = path.length === 0 ? (OPTION_OF[key] ?? key) : key
    if (typeof inner === 'object' && inner !== null) {
      for (const [leaf, v] of leaves(inner, [...path, name])) found.set(leaf, v)
    } else {
      found.set([...path, name].join('.'), inner)
    }
  }
  return found
}

interface Row { option: string, defaultCell: string }

/** The rows of the table under `## Options` whose header is `| Option | Default | Description |`. */
function optionRows (readme: string): Row[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Options\n'))
  if (section === undefined) throw new Error('the README has no "## Options" section')
  const lines = section.split('\n')
  const header = lines.findIndex((l) => /^\|\s*Option\s*\|\s*Default\s*\|\s*Description\s*\|\s*$/.test(l))
  if (header === -1) throw new Error('the Options section has no | Option | Default | Description | table')
  const rows: Row[] = []
  // Skip the header and its delimiter row; the table ends at the first line that is not a row.
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break
    // Cells split on `|`, but not on `\|` (a pipe inside a code span, as in `string \| false`).
    const cells = line.slice(1, line.endsWith('|') ? -1 : undefined).split(/(?<!\\)\|/).map((c) => c.trim())
    const option = /^`([^`]+)`$/.exec(cells[0] ?? '')
    if (option === null) throw new Error(`an Options row whose first cell is not one option in backticks: ${line}`)
    rows.push({ option: option[1] as string, defaultCell: cells[1] ?? '' })
  }
  return rows
}

/** The code span a Default cell starts with, if it starts with one. */
function leadingCode (cell: string): string | undefined {
  return /^`([^`]*)`/.exec(cell)?.[1]
}

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const rows = optionRows(readme)
const defaults = leaves(DEFAULTS)

t.test('the README has an Options table, one row per option', async (t) => {
  t.ok(rows.length >= defaults.size, `${rows.length} rows`)
  const seen = new Set<string>()
  for (const { option } of rows) {
    t.notOk(seen.has(option), `${option} has one row`)
    seen.add(option)
  }
})

t.test('every default in lib/options/defaults.ts has a row that states it', async (t) => {
  const byOption = new Map(rows.map((r) => [r.option, r]))
  for (const [option, value] of defaults) {
    const row = byOption.get(option)
    if (row === undefined) {
      t.fail(`no README row for ${option} (default ${JSON.stringify(value)})`)
      continue
    }
    t.equal(leadingCode(row.defaultCell), JSON.stringify(value), `${option}: the README says ${row.defaultCell}`)
  }
})

t.test('every default the README states is one of lib/options/defaults.ts', async (t) => {
  for (const { option, defaultCell } of rows) {
    const code = leadingCode(defaultCell)
    if (code === undefined) continue
    t.ok(defaults.has(option), `${option} has a default in DEFAULTS, as its row says ${code}`)
    if (defaults.has(option)) t.equal(code, JSON.stringify(defaults.get(option)), `${option}`)
  }
})

t.test('options without a plain default say so in words', async (t) => {
  const byOption = new Map(rows.map((r) => [r.option, r]))
  for (const option of ['secret', 'keys', 'jwksUrl', 'findUser', 'issuer', 'audience', 'clients', 'store', 'onAuthEvent',
    'onPasswordRehash', 'claims', 'scopes', 'password.maxConcurrent']) {
    const row = byOption.get(option)
    t.ok(row, `${option} has a row`)
    if (row !== undefined) t.equal(leadingCode(row.defaultCell), undefined, `${option}: ${row.defaultCell}`)
  }
})

t.test('the defaults cannot be changed at run time', async (t) => {
  t.ok(Object.isFrozen(DEFAULTS))
  t.ok(Object.isFrozen(DEFAULTS.loginThrottle.perUsername))
  t.throws(() => { (DEFAULTS.password as { memoryCost: number }).memoryCost = 1 })
})
