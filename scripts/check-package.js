// Checks the package as npm would publish it: @arethetypeswrong/cli resolves `import` and
// `require` (node10, node16 from CJS and ESM, bundler) to their JS and .d.ts, and publint checks
// package.json against the files shipped. Run after `npm run build`; packs the package itself,
// or checks the tarball given as its argument (scripts/release-check.js passes the one it made).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dir = mkdtempSync(join(tmpdir(), 'fastify-token-auth-pack-'))
try {
  let tarball = process.argv[2]
  if (tarball === undefined) {
    // --ignore-scripts: `prepare` would build again; the tarball holds the dist/ just built.
    execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { stdio: ['ignore', 'ignore', 'inherit'] })
    tarball = join(dir, readdirSync(dir).find((name) => name.endsWith('.tgz')))
  }
  execFileSync('npx', ['--no-install', 'attw', tarball, '--format', 'table-flipped'], { stdio: 'inherit' })
  execFileSync('npx', ['--no-install', 'publint', '--strict', tarball], { stdio: 'inherit' })
} catch (error) {
  // The tools have printed what is wrong; a stack trace would only hide it.
  console.error(`package check failed: ${error.message.split('\n')[0]}`)
  process.exitCode = 1
} finally {
  rmSync(dir, { recursive: true, force: true })
}
