import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import semver from 'semver'
import { childEnv, SECRET } from './helper.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(root + 'package.json', 'utf8'))
const built = existsSync(root + 'dist/cjs/index.js') && existsSync(root + 'dist/esm/index.js')

// tsc runs once below, and takes seconds on a busy machine.
t.setTimeout(120_000)

t.test('package metadata', async (t) => {
  t.equal(pkg.license, 'MIT')
  t.ok(existsSync(root + 'LICENSE'))
  t.match(pkg.peerDependencies.fastify, /^\^5\./)
  t.notOk(pkg.dependencies.fastify, 'fastify is a peer, not a dependency')
  for (const dep of ['fastify-plugin', '@fastify/jwt', '@fastify/formbody', '@fastify/rate-limit', 'argon2']) {
    t.ok(pkg.dependencies[dep], `${dep} is a runtime dependency`)
  }
})

t.test('supported Node.js versions: the LTS lines, and every dependency in the lockfile runs on all of them', async (t) => {
  const supported: string = pkg.engines.node
  // On 2026-12-04 the LTS lines are 22 (maintenance), 24 (maintenance) and 26 (active);
  // Node.js 20 reached end of life on 2026-04-30.
  for (const version of ['22.13.0', '24.0.0', '26.0.0']) t.ok(semver.satisfies(version, supported), `${version} is supported`)
  t.notOk(semver.intersects(supported, '20.x'), 'Node.js 20 is not')
  // npm warns (EBADENGINE) when a package's engines refuse the running Node: no package of the
  // lockfile, runtime or development, may refuse a version this package supports.
  const lock = JSON.parse(readFileSync(root + 'package-lock.json', 'utf8'))
  const refusing = Object.entries(lock.packages as Record<string, { engines?: { node?: string } }>)
    .filter(([path, entry]) => path !== '' && typeof entry.engines?.node === 'string' && !semver.subset(supported, entry.engines.node))
    .map(([path, entry]) => `${path.replace(/^.*node_modules\//, '')} needs node ${entry.engines?.node}`)
  t.same(refusing, [], `every dependency accepts node ${supported}`)
})

t.test('private keys written by generate-key as the README shows are git-ignored', async (t) => {
  const paths = ['keys.json', 'keys.next.json', 'new-key.json', 'examples/keys.json']
  const ignored = execFileSync('git', ['check-ignore', '--no-index', ...paths], { cwd: root, encoding: 'utf8' }).trim().split('\n')
  t.same(ignored, paths)
})

t.test('npm start builds the package before the example server imports it from dist/', async (t) => {
  // The example imports the package by name, which resolves to dist/: without the build first,
  // `npm start` would serve whatever an older build left there.
  t.match(pkg.scripts.start, /examples\/server\.ts/)
  t.equal(pkg.scripts.prestart, 'npm run build')
  t.match(readFileSync(root + 'examples/server.ts', 'utf8'), new RegExp(`from '${pkg.name}'`))
})

/** a >= b for dotted versions. */
function atLeast (a: string, b: string): boolean {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0)
  }
  return true
}

t.test('the lockfile resolves versions past their published advisories', async (t) => {
  const lock = JSON.parse(readFileSync(root + 'package-lock.json', 'utf8'))
  const floors: Record<string, string> = { fastify: '5.12.3', '@fastify/jwt': '10.2.5', 'fast-jwt': '6.3.4' }
  for (const [name, floor] of Object.entries(floors)) {
    const versions = Object.entries(lock.packages as Record<string, { version: string }>)
      .filter(([path]) => path.endsWith(`node_modules/${name}`))
      .map(([, entry]) => entry.version)
    t.ok(versions.length > 0, `${name} is in the lockfile`)
    for (const version of versions) t.ok(atLeast(version, floor), `${name} ${version} >= ${floor}`)
  }
})

t.test('the built package', { skip: built ? false : 'dist/ is missing: run `npm run build` first' }, async (t) => {
  // The built files run in a child process of their own: their source maps point back at lib/,
  // and the CommonJS build would otherwise be counted against lib/'s coverage.
  function runBuilt (source: string, type: 'commonjs' | 'module'): string {
    return execFileSync(process.execPath, ['--input-type=' + type, '-e', source], { cwd: root, env: childEnv(), encoding: 'utf8' })
  }

  t.test('require() returns the plugin function, with .default and the named exports on it', async (t) => {
    const out = runBuilt(`
      const plugin = require(${JSON.stringify(pkg.name)})
      const meta = plugin[Symbol.for('plugin-meta')]
      const app = require('fastify')()
      plugin.hashPassword('pw', { memoryCost: 256 }).then(async (passwordHash) => {
        await app.register(plugin, {
          secret: ${JSON.stringify(SECRET)},
          findUser: async (username) => username === 'u' ? { username, passwordHash } : null,
          password: { memoryCost: 256 }
        })
        const res = await app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=password&username=u&password=pw' })
        console.log(JSON.stringify({
          resolved: require.resolve(${JSON.stringify(pkg.name)}),
          type: typeof plugin,
          isDefault: plugin.default === plugin,
          alias: plugin.fastifyTokenAuth === plugin,
          name: meta.name,
          fastify: meta.fastify,
          named: Object.keys(plugin).sort(),
          status: res.statusCode
        }))
        await app.close()
      })`, 'commonjs')
    const result = JSON.parse(out)
    t.equal(result.resolved, root + 'dist/cjs/index.js')
    t.equal(result.type, 'function')
    t.ok(result.isDefault, '.default is the plugin (fastify-plugin\'s convention)')
    t.ok(result.alias, 'the named export is fastify-plugin\'s camelCase alias')
    t.equal(result.name, pkg.name)
    t.equal(result.fastify, '5.x')
    const esm = JSON.parse(runBuilt(`import * as all from ${JSON.stringify(pkg.name)}; console.log(JSON.stringify(Object.keys(all).sort()))`, 'module'))
    t.same(result.named, esm, 'the same named exports as the ES module')
    t.equal(result.status, 200, 'a login through the CommonJS build')
  })

  t.test('works from import', async (t) => {
    const out = runBuilt(`
      import plugin, * as all from 'fastify-token-auth'
      console.log(JSON.stringify({
        url: import.meta.resolve('fastify-token-auth'),
        defaultType: typeof plugin,
        alias: all.fastifyTokenAuth === plugin,
        verifyPassword: typeof all.verifyPassword,
        createMemoryStore: typeof all.createMemoryStore
      }))`, 'module')
    const result = JSON.parse(out)
    t.match(result.url, /\/dist\/esm\/index\.js$/)
    t.equal(result.defaultType, 'function')
    t.ok(result.alias)
    t.equal(result.verifyPassword, 'function')
    t.equal(result.createMemoryStore, 'function')
  })

  t.test('ships types next to each build', async (t) => {
    t.ok(existsSync(root + pkg.exports['.'].import.types))
    t.ok(existsSync(root + pkg.exports['.'].require.types))
    t.ok(existsSync(root + pkg.bin[pkg.name]))
  })

  t.test('a TypeScript user without pg compiles against the PostgreSQL store\'s types (skipLibCheck off)', async (t) => {
    // The store's own declarations, not the whole package's: they are what could pull pg in,
    // and checking every declaration of fastify and its plugins takes the better part of a minute.
    const dir = mkdtempSync(join(root, '.consumer-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'consumer.ts'), `
      import { createPostgresStore, migratePostgresStore, type PostgresQueryable } from '../dist/esm/stores/postgres.js'
      const pool: PostgresQueryable = { query: async () => ({ rows: [], rowCount: 0 }) }
      await migratePostgresStore(pool, { schema: 'auth' })
      const store = createPostgresStore({ pool, schema: 'auth', queryTimeout: 500 })
      const swept: number = (await store.sweep()).families
      export { swept }
    `)
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        module: 'nodenext',
        target: 'es2022',
        types: [],
        // Were a declaration to import pg (or use Node's types), it would now fail to resolve.
        paths: { pg: ['./no-such-module'], 'pg/*': ['./no-such-module'] }
      },
      files: ['consumer.ts']
    }))
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    let output = ''
    try {
      execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8' })
    } catch (error) {
      output = String((error as { stdout?: string }).stdout)
    }
    t.equal(output, '', 'it compiles')
    for (const build of ['esm', 'cjs']) {
      t.notMatch(readFileSync(join(root, 'dist', build, 'stores', 'postgres.d.ts'), 'utf8'), /['"]pg['"]/, `dist/${build} declares no import of pg`)
    }
  })

  t.test('npm pack holds only what a user runs: built JS, declarations, README, LICENSE, CHANGELOG', async (t) => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })
    const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path)
    for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'dist/esm/index.js', 'dist/esm/index.d.ts',
      'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/package.json', 'dist/esm/cli/bin.js']) {
      t.ok(files.includes(file), file)
    }
    const allowed = /^(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist\/cjs\/package\.json|dist\/(esm|cjs)\/[a-z/-]+\.(js|d\.ts))$/
    t.same(files.filter((f) => !allowed.test(f)), [], 'no source maps, sources, tests, examples or config')
    // Each module ships with its declarations (main.js is the CommonJS build's own index).
    const js = files.filter((f) => f.endsWith('.js'))
    t.same(js.filter((f) => !files.includes(f.replace(/\.js$/, '.d.ts'))), [], 'every .js has its .d.ts')
    t.notOk(files.some((f) => f.startsWith('dist/cjs/cli/')), 'the CLI ships once, as ESM')
  })
})
