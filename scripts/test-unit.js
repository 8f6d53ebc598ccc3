// Runs the tap suite. The tests against a real Redis need REDIS_URL (`.ci/run` sets it); without
// it they are skipped with a message, and the Redis store's lines are left out of the coverage
// count, so that `npm install && npm test` passes on a machine without Redis.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const args = process.argv.slice(2)
if (!process.env.REDIS_URL) {
  console.log('REDIS_URL is not set: the Redis tests are skipped and lib/stores/redis.ts is not counted for coverage.')
  console.log('Run `REDIS_URL=redis://127.0.0.1:6379 npm test` to include them.')
  args.unshift('--coverage-exclude=dist/**', '--coverage-exclude=examples/**', '--coverage-exclude=lib/stores/redis.ts')
}
const tap = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const { status } = spawnSync(process.execPath, [tap, ...args], { stdio: 'inherit' })
process.exit(status ?? 1)
