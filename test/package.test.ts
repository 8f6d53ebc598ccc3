import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SECRET } from './helper.js'

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
  t.equal(pkg.engines.node, '>=20')
  for (const dep of ['fastify-plugin', '@fastify/jwt', '@fastify/formbody', '@fastify/rate-limit', 'argon2']) {
    t.ok(pkg.dependencies[dep], `${dep} is a runtime dependency`)
  }
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
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NODE_V8_COVERAGE|NODE_OPTIONS|_TAPJS)/.test(k)))
    return execFileSync(process.execPath, ['--input-type=' + type, '-e', source], { cwd: root, env, encoding: 'utf8' })
  }

  t.test('works from require()', async (t) => {
    const out = runBuilt(`
      const plugin = require('fastify-jwt-auth')
      const meta = plugin.default[Symbol.for('plugin-meta')]
      const app = require('fastify')()
      plugin.hashPassword('pw', { memoryCost: 256 }).then(async (passwordHash) => {
        await app.register(plugin.default, {
          secret: ${JSON.stringify(SECRET)},
          findUser: async (username) => username === 'u' ? { username, passwordHash } : null,
          password: { memoryCost: 256 }
        })
        const res = await app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=password&username=u&password=pw' })
        console.log(JSON.stringify({
          resolved: require.resolve('fastify-jwt-auth'),
          defaultType: typeof plugin.default,
          alias: plugin.fastifyJwtAuth === plugin.default,
          name: meta.name,
          fastify: meta.fastify,
          hashPassword: typeof plugin.hashPassword,
          status: res.statusCode
        }))
        await app.close()
      })`, 'commonjs')
    const result = JSON.parse(out)
    t.equal(result.resolved, root + 'dist/cjs/index.js')
    t.equal(result.defaultType, 'function')
    t.ok(result.alias, 'the named export is fastify-plugin\'s camelCase alias')
    t.equal(result.name, 'fastify-jwt-auth')
    t.equal(result.fastify, '5.x')
    t.equal(result.hashPassword, 'function')
    t.equal(result.status, 200, 'a login through the CommonJS build')
  })

  t.test('works from import', async (t) => {
    const out = runBuilt(`
      import plugin, * as all from 'fastify-jwt-auth'
      console.log(JSON.stringify({
        url: import.meta.resolve('fastify-jwt-auth'),
        defaultType: typeof plugin,
        alias: all.fastifyJwtAuth === plugin,
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
    t.ok(existsSync(root + pkg.bin['fastify-jwt-auth']))
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

  t.test('npm pack holds only what a user needs', async (t) => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })
    const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path)
    t.ok(files.includes('package.json'))
    t.ok(files.includes('README.md'))
    t.ok(files.includes('LICENSE'))
    t.ok(files.includes('dist/esm/index.js'))
    t.ok(files.includes('dist/cjs/index.js'))
    t.ok(files.includes('dist/cjs/package.json'), 'dist/cjs is marked CommonJS')
    const stray = files.filter((f) => !/^(package\.json|README\.md|LICENSE|dist\/.+)$/.test(f))
    t.same(stray, [], 'no sources, tests, examples or config')
  })
})
