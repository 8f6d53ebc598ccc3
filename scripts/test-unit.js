// Runs the tap suite. The tests against a real Redis need REDIS_URL, those against a real
// PostgreSQL DATABASE_URL (`.ci/run` sets both); without one, its tests are skipped with a
// message, and its store's lines are left out of the coverage count, so that
// `npm install && npm test` passes on a machine without Redis or PostgreSQL.
import { spawnSync } from 'node:child_process'
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
if (excluded.length > 0) args.unshift('--coverage-exclude=dist/**', '--coverage-exclude=examples/**', '--coverage-exclude=bench/**', ...excluded.map((file) => `--coverage-exclude=${file}`))
const tap = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const { status } = spawnSync(process.execPath, [tap, ...args], { stdio: 'inherit' })
process.exit(status ?? 1)
