/*
 * The example server: the plugin as a Fastify app uses it, with three demo users.
 *
 *   npm start                       # http://127.0.0.1:3000
 *   JWT_SECRET=... PORT=8080 npm start
 *
 * Environment: HOST, PORT, JWT_SECRET (>= 32 bytes; random per run when unset), JWT_ISSUER,
 * JWT_AUDIENCE, ACCESS_TOKEN_TTL (seconds), RATE_LIMIT=off (load tests only), TRUST_PROXY=1
 * (behind a reverse proxy), LOG_LEVEL, REDIS_URL (share state with other instances through
 * Redis; in memory when unset), REDIS_PREFIX.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import jwtAuth, { createRedisStore, hashPassword, type AuthStore, type UserRecord } from 'fastify-jwt-auth'

type Env = Record<string, string | undefined>

/** Builds the example app from environment variables; `start()` below listens. */
export async function buildServer (env: Env = process.env): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: env.LOG_LEVEL ?? 'info',
      // Never let a bearer token or client credentials reach a log line.
      redact: ['req.headers.authorization', 'req.headers.cookie']
    },
    trustProxy: env.TRUST_PROXY === '1' || env.TRUST_PROXY === 'true'
  })

  let secret = env.JWT_SECRET
  if (secret === undefined || secret === '') {
    secret = randomBytes(32).toString('base64url')
    app.log.warn('JWT_SECRET is not set: using a random secret for this run; tokens will not survive a restart')
  }

  const throttling = env.RATE_LIMIT !== 'off'
  if (!throttling) app.log.warn('RATE_LIMIT=off: login throttling is disabled; use this for load tests only')

  // Demo users, hashed at start-up with the plugin's default (OWASP) argon2id parameters.
  const users = new Map<string, UserRecord>()
  for (const [username, password, scopes, disabled] of [
    ['user1', 'password1', ['profile'], false],
    ['admin', 'admin-password', ['profile', 'admin'], false],
    ['disabled-user', 'password1', ['profile'], true]
  ] as const) {
    users.set(username, { username, passwordHash: await hashPassword(password), scopes, disabled })
  }

  // REDIS_URL: counters, refresh-token families and revocations live in Redis, shared by every
  // instance; without it, in this process's memory.
  let store: AuthStore | undefined
  if (env.REDIS_URL !== undefined && env.REDIS_URL !== '') {
    // Fail fast while Redis is away (the plugin answers 503), and reconnect on its own.
    const client = new Redis(env.REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    client.on('error', (error) => app.log.warn({ err: { message: error.message } }, 'redis connection error'))
    await client.connect().catch((error: unknown) => {
      client.disconnect()
      throw error
    })
    app.addHook('onClose', async () => { client.disconnect() })
    store = createRedisStore({ client, prefix: env.REDIS_PREFIX ?? 'fastify-jwt-auth-example:' })
  }

  await app.register(jwtAuth, {
    secret,
    store,
    refreshTokens: true,
    revocableAccessTokens: true,
    issuer: env.JWT_ISSUER ?? 'http://127.0.0.1:3000',
    audience: env.JWT_AUDIENCE ?? 'fastify-jwt-auth-example',
    accessTokenTtl: env.ACCESS_TOKEN_TTL === undefined ? 900 : Number(env.ACCESS_TOKEN_TTL),
    findUser: (username) => users.get(username) ?? null,
    ...(throttling ? {} : { rateLimit: false, loginThrottle: false })
  })

  app.get('/public', async () => ({ message: 'Hello, world!' }))
  app.get('/protected', { preHandler: app.authenticate }, async () => ({ message: 'Hello, authenticated user!' }))
  app.get('/me', { preHandler: app.authenticate }, async (request) => ({
    sub: request.user.sub,
    scope: request.user.scope.join(' ')
  }))
  app.get('/admin', { preHandler: [app.authenticate, app.requireScopes('admin')] }, async () => ({ message: 'Hello, admin!' }))
  return app
}

/** Listens on HOST:PORT (default 127.0.0.1:3000). */
export async function start (env: Env = process.env): Promise<FastifyInstance> {
  const app = await buildServer(env)
  await app.listen({ host: env.HOST ?? '127.0.0.1', port: env.PORT === undefined ? 3000 : Number(env.PORT) })
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  start().catch((error: unknown) => {
    console.error(error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : error)
    process.exit(1)
  })
}
