// The check before a release, run after `npm run build` (`npm run release:check` does both):
//
// 1. packs the package as npm would publish it;
// 2. checks the tarball with @arethetypeswrong/cli and publint (scripts/check-package.js);
// 3. installs the tarball, as a user would, into a temporary app (its dependencies from the npm
//    cache when they are there; optional peers such as ioredis are not installed, as for a user
//    who does not need them);
// 4. runs the consumer tests in test/release/ against that app: ESM, CommonJS and TypeScript
//    consumers, and the Quick start file.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
const locked = (name) => lock.packages[`node_modules/${name}`].version

const dir = mkdtempSync(join(tmpdir(), 'release-check-'))
let status = 1
try {
  // --ignore-scripts: `prepare` would build again; the tarball holds the dist/ just built.
  execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  const tarball = join(dir, readdirSync(dir).find((name) => name.endsWith('.tgz')))
  execFileSync(process.execPath, [join(root, 'scripts/check-package.js'), tarball], { stdio: 'inherit' })

  const app = join(dir, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer-app', private: true, type: 'module' }, null, 2) + '\n')
  // fastify, a required peer, comes with the tarball (npm installs peers); @types/node for the
  // TypeScript consumer, at the version this repository builds with.
  console.log(`release check: installing ${tarball} into ${app}`)
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, `@types/node@${locked('@types/node')}`], { cwd: app, stdio: 'inherit' })

  const tests = readdirSync(join(root, 'test/release')).filter((name) => name.endsWith('.release.ts')).map((name) => join('test/release', name))
  const tap = join(root, 'node_modules/tap/dist/esm/run.mjs')
  // A strict tsc over every shipped declaration and its dependencies' takes a while on a small machine.
  const run = spawnSync(process.execPath, [tap, '--disable-coverage', '--timeout=300', ...tests], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, RELEASE_APP: app, RELEASE_TARBALL: tarball }
  })
  status = run.status ?? 1
} catch (error) {
  // The tools have printed what is wrong; a stack trace would only hide it.
  console.error(`release check failed: ${error.message.split('\n')[0]}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.exit(status)
