// Two tsc passes give the dual ESM/CommonJS build that `exports` points at.
import { execFileSync } from 'node:child_process'
import { rmSync, writeFileSync, chmodSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')

rmSync('dist', { recursive: true, force: true })
for (const project of ['tsconfig.build.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', project], { stdio: 'inherit' })
}
writeFileSync('dist/cjs/package.json', '{ "type": "commonjs" }\n')
chmodSync('dist/esm/cli/bin.js', 0o755)
