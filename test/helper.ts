import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createHash, createHmac } from 'node:crypto'
import { createServer } from 'node:net'
import { Writable } from 'node:stream'
import tokenAuth, { hashPassword, migratePostgresStore, type AuthStore, type FastifyTokenAuthBaseOptions, type FastifyTokenAuthOptions, type KeyOption, type UserRecord } from '../lib/index.js'
import { Redis, type RedisOptions } from 'ioredis'
import argon2 from 'argon2'
import type { Test } from 'tap'
import pg from 'pg'

/** A secret that passes the plugin's checks; tests only. */
export const SECRET = 'test-only-8f3a1c9e4b7d2f6a0c5e9b3d7f1a4c8e'

/** argon2id parameters cheap enough for unit tests; timing tests use the real ones. */
export const CHEAP = Object.freeze({ memoryCost: 256, timeCost: 2, parallelism: 1 })

interface Tap {
  teardown: (fn: () => unknown) => void
}

const hashes = new Map<string, Promise<string>>()
/** Hashes once per password and parameters, so many tests share the cost. */
export function cheapHash (password: string): Promise<string> {
  let hash = hashes.get(password)
  if (hash === undefined) {
    hash = hashPassword(password, CHEAP)
    hashes.set(password, hash)
  }
  return hash
}

/** The users of the example server, with cheap hashes. */
export async function demoUsers (): Promise<Map<string, UserRecord>> {
  return new Map<string, UserRecord>([
    ['user1', { username: 'user1', passwordHash: await cheapHash('password1'), scopes: ['profile'] }],
    ['admin', { id: 42, username: 'admin', passwordHash: await cheapHash('admin-password'), scopes: ['profile', 'admin'] }],
    ['disabled-user', { username: 'disabled-user', passwordHash: await cheapHash('password1'), disabled: true, scopes: ['profile'] }]
  ])
}

/**
 * Plugin options as tests pass them: the key sources are not exclusive here, so that tests can
 * check the registration-time errors for combinations the types refuse.
 */
export type LooseOptions = Partial<FastifyTokenAuthBaseOptions> & {
  secret?: string | Buffer | undefined
  keys?: readonly KeyOption[] | undefined
  jwksUrl?: string | URL | undefined
  prefix?: string
}

export interface BuildOptions {
  plugin?: LooseOptions
  server?: FastifyServerOptions
  register?: Record<string, unknown>
  before?: (app: FastifyInstance) => unknown
}

/** A fresh app with the plugin, `/protected`, `/admin` and `/public`; closed at teardown. */
export async function buildApp (t: Tap, { plugin = {}, server = {}, register = {}, before }: BuildOptions = {}): Promise<FastifyInstance> {
  const users = await demoUsers()
  const app = Fastify(server)
  t.teardown(() => app.close())
  await before?.(app)
  await app.register(tokenAuth, {
    secret: SECRET,
    findUser: async (username: string) => users.get(username) ?? null,
    password: { ...CHEAP },
    ...plugin,
    ...register
  } as FastifyTokenAuthOptions)
  app.get('/public', async () => ({ ok: true }))
  app.get('/protected', { preHandler: app.authenticate }, async (request) => ({ sub: request.user.sub, scope: request.user.scope }))
  app.get('/admin', { preHandler: [app.authenticate, app.requireScopes('admin')] }, async () => ({ admin: true }))
  await app.ready()
  return app
}

/** An x-www-form-urlencoded body. */
export function form (fields: Record<string, string | string[]>): string {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value]) params.append(name, v)
  }
  return params.toString()
}

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/** POSTs a token request with the given fields. */
export function tokenRequest (app: FastifyInstance, fields: Record<string, string | string[]>, headers: Record<string, string> = {}, url = '/token') {
  return app.inject({ method: 'POST', url, headers: { ...FORM, ...headers }, payload: form(fields) })
}

/** Logs in with the password grant and returns the access token. */
export async function login (app: FastifyInstance, username = 'user1', password = 'password1', extra: Record<string, string> = {}): Promise<string> {
  const res = await tokenRequest(app, { grant_type: 'password', username, password, ...extra })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return res.json().access_token as string
}

const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** Builds and HMAC-signs a JWS by hand, so tests can send tokens the plugin would never issue. */
export function forge (header: unknown, payload: unknown, secret: string | Buffer = SECRET, alg = 'sha256'): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${createHmac(alg, secret).update(input).digest('base64url')}`
}

/** Claims of a token that would be valid, to be spoiled one at a time. */
export function validClaims (overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return { sub: 'user1', iat: now, exp: now + 300, jti: 'j1', client_id: 'public', scope: 'profile', ...overrides }
}

export const VALID_HEADER = Object.freeze({ alg: 'HS256', typ: 'at+jwt' })

export function bearer (token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` }
}

/** A pino destination that keeps every log line, parsed, for assertions on what was logged. */
export function captureLogs (): { stream: Writable, lines: string[], entries: () => Array<Record<string, unknown>> } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(String(chunk))
      callback()
    }
  })
  return { stream, lines, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) }
}

/** The Redis the store tests use; without REDIS_URL those tests are skipped, with this message. */
export const REDIS_URL = process.env.REDIS_URL === '' ? undefined : process.env.REDIS_URL
export const NO_REDIS: string | false = REDIS_URL === undefined ? 'REDIS_URL is not set: the tests against a real Redis are skipped' : false

/**
 * The environment for a child Node process that is a program of its own (the bench, a tap run,
 * an example): without this run's coverage and tap settings, which would otherwise reach it.
 */
/** A port on 127.0.0.1 that was free a moment ago: for a server to listen on, or one where nothing answers. */
export async function freePort (): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

export function childEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NODE_V8_COVERAGE|NODE_OPTIONS|_TAPJS|TAP_)/.test(k)))
}

/** A key prefix of its own for one test, so tests sharing a Redis never see each other's keys. */
export function testPrefix (): string {
  return `fja-test:${crypto.randomUUID()}:`
}

/**
 * A client of the Redis at REDIS_URL that fails at once while Redis is away, as the README
 * advises. At teardown the test's keys are deleted and the client quits.
 */
export async function redisClient (t: Tap, prefix: string, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(REDIS_URL as string, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, ...options })
  client.on('error', () => {})
  await client.connect()
  t.teardown(async () => {
    if (client.status === 'ready') {
      const keys = await client.keys(`${prefix}*`)
      if (keys.length > 0) await client.del(...keys)
    }
    client.disconnect()
  })
  return client
}

/** The remaining time to live of every key under `prefix`, in ms (-1: none, -2: gone). */
export async function keyTtls (client: Redis, prefix: string): Promise<Map<string, number>> {
  const ttls = new Map<string, number>()
  for (const key of await client.keys(`${prefix}*`)) ttls.set(key, await client.pttl(key))
  return ttls
}

/**
 * Counts argon2 verifications from now until teardown (every password and client-secret check
 * goes through `argon2.verify`, the dummy-hash one included).
 */
export function countArgon2Verifies (t: Test): () => number {
  let count = 0
  const verify = argon2.verify.bind(argon2)
  t.capture(argon2, 'verify', async (...args: Parameters<typeof argon2.verify>) => {
    count += 1
    return await verify(...args)
  })
  return () => count
}

/** The PostgreSQL the store tests use; without DATABASE_URL those tests are skipped, with this message. */
export const DATABASE_URL = process.env.DATABASE_URL === '' ? undefined : process.env.DATABASE_URL
export const NO_POSTGRES: string | false = DATABASE_URL === undefined ? 'DATABASE_URL is not set: the tests against a real PostgreSQL are skipped' : false

/**
 * A pool on the PostgreSQL at DATABASE_URL that fails fast while PostgreSQL is away, as the
 * docs advise, with the `error` listener pg needs. Ended at teardown.
 */
export function postgresPool (t: Tap, options: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2000, max: 10, ...options })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  return pool
}

/**
 * A schema of its own for one test, with the store's tables in it, dropped at teardown: test
 * files run in parallel on one database and never see each other's rows.
 */
export async function testSchema (t: Tap, pool: pg.Pool): Promise<string> {
  const schema = `fja_test_${crypto.randomUUID().replaceAll('-', '')}`
  await migratePostgresStore(pool, { schema })
  t.teardown(async () => {
    // A pool of its own: the test's pool may be pointed at a closed port, or already ended.
    const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 })
    admin.on('error', () => {})
    try {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    } finally {
      await admin.end()
    }
  })
  return schema
}

/** The refresh tokens that are their family's current one, asked of the store (presenting a dead one would be reuse). */
export async function liveTokens (store: AuthStore, tokens: readonly string[]): Promise<string[]> {
  const live: string[] = []
  for (const token of tokens) {
    const [userKey, locator] = token.split('.') as [string, string]
    const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url')
    // The family's id is a hash of the locator the token carries.
    if ((await store.getRefreshFamily(userKey, sha256(locator).slice(0, 22), sha256(token), Date.now()))?.current === true) live.push(token)
  }
  return live
}
