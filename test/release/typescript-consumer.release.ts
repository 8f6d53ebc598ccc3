import t from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { APP, PKG, childEnv } from './app.js'

/*
 * TypeScript consumers of the packed tarball, strict and with skipLibCheck off, so every shipped
 * .d.ts is checked, in an app where ioredis (an optional peer) is not installed: an ES module, a
 * CommonJS module (the `export =` declarations), and the Quick start file.
 */

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

const ESM = `import Fastify from 'fastify'
import tokenAuth, { createMemoryStore, createRedisStore, fastifyTokenAuth, hashPassword, type AuthUser, type RedisClient, type UserRecord } from '${PKG.name}'

declare module '${PKG.name}' {
  interface CustomClaims { tenant: string }
}

const users = new Map<string, UserRecord>()
const app = Fastify()
await app.register(tokenAuth, {
  secret: 'x'.repeat(43),
  findUser: async (username) => users.get(username) ?? null,
  claims: () => ({ tenant: 't1' }),
  store: createMemoryStore()
})
app.get('/me', { preHandler: app.authenticate }, async (request) => {
  const user: AuthUser = request.user
  const tenant: string = user.claims.tenant
  return { tenant }
})
// @ts-expect-error: the claims must be the ones declared in CustomClaims
await app.register(fastifyTokenAuth, { secret: 'x'.repeat(43), claims: () => ({ tenants: 't1' }) })
const hash: Promise<string> = hashPassword('pw')
// The Redis store is typed without ioredis: any client with the methods it calls fits.
declare const client: RedisClient
createRedisStore({ client })
export { hash }
`

const CJS = `import tokenAuth = require('${PKG.name}')
import Fastify = require('fastify')
import { hashPassword, type UserRecord } from '${PKG.name}'

declare module '${PKG.name}' {
  interface CustomClaims { region: string }
}

const user: UserRecord = { username: 'u', passwordHash: '$argon2id$...' }
const app = Fastify()
app.register(tokenAuth, { secret: 'x'.repeat(43), findUser: async () => user, claims: () => ({ region: 'eu' }) })
app.register(tokenAuth.default, { secret: 'x'.repeat(43) })
app.register(tokenAuth.fastifyTokenAuth, { secret: 'x'.repeat(43) })
// @ts-expect-error: the claims must be the ones declared in CustomClaims
app.register(tokenAuth, { secret: 'x'.repeat(43), claims: () => ({ regions: 'eu' }) })
app.get('/me', { preHandler: app.authenticate }, async (request) => ({ region: request.user.claims.region }))
const hashed: Promise<string> = tokenAuth.hashPassword('pw')
export = { hashed, hashPassword }
`

/** Compiles the given files of the app with tsc, strict and skipLibCheck off; resolves tsc's diagnostics. */
async function compile (name: string, files: string[]): Promise<{ code: number, stdout: string }> {
  const config = join(APP, `tsconfig.${name}.json`)
  writeFileSync(config, JSON.stringify({
    compilerOptions: {
      target: 'es2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      skipLibCheck: false,
      noEmit: true,
      types: ['node']
    },
    files
  }, null, 2))
  return await promisify(execFile)(process.execPath, [tsc, '-p', config], { cwd: APP, env: childEnv(), encoding: 'utf8' })
    .then(() => ({ code: 0, stdout: '' }), (error: { code: number, stdout: string }) => error)
}

t.before(() => {
  writeFileSync(join(APP, 'esm-consumer.ts'), ESM)
  writeFileSync(join(APP, 'cjs-consumer.cts'), CJS)
  copyFileSync(new URL('../../examples/quick-start.ts', import.meta.url), join(APP, 'quick-start.ts'))
})

t.test('the app has no ioredis: the published types must not need it', async (t) => {
  t.notOk(existsSync(join(APP, 'node_modules/ioredis')))
})

// One program each, as an app is one or the other: a program with both would load the ESM and
// the CommonJS declarations side by side, each augmenting @fastify/jwt with its own AuthUser.
t.test('an ES module app, and the Quick start file, compile against the packed types', async (t) => {
  t.same(await compile('esm', ['esm-consumer.ts', 'quick-start.ts']), { code: 0, stdout: '' })
})

t.test('a CommonJS app (import = require, export = declarations) compiles against the packed types', async (t) => {
  t.same(await compile('cjs', ['cjs-consumer.cts']), { code: 0, stdout: '' })
})
