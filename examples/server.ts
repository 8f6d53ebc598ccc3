/*
 * The example server: the plugin as a Fastify app uses it, with three demo users.
 *
 *   npm start                       # http://127.0.0.1:3000
 *   JWT_SECRET=... PORT=8080 npm start
 *
 * Environment: HOST, PORT, JWT_SECRET (>= 32 bytes; random per run when unset), JWT_KEYS_FILE (a
 * JWK Set of private keys, each with kid and alg, the first signing; replaces JWT_SECRET and serves
 * /.well-known/jwks.json), JWT_ISSUER (default http://HOST:PORT), JWT_AUDIENCE, ACCESS_TOKEN_TTL (seconds), THREAD_POOL_PRIORITY (0–19, default 10), RATE_LIMIT=off
 * (load tests only), TRUST_PROXY (behind reverse proxies: their number, e.g. 1, or their addresses
 * and CIDR ranges, comma-separated, e.g. 10.0.0.0/8,fd00::/8), REQUEST_TIMEOUT (seconds a client has to send
 * a whole request, default 10), LOG_LEVEL, REDIS_URL (share state with
 * other instances through Redis; in memory when unset), REDIS_PREFIX, STORE_DATABASE_URL (share it
 * through PostgreSQL instead; its tables are made at start), STORE_DATABASE_SCHEMA, DEMO_CLIENT_SECRET (registers the
 * confidential client `demo-service`, which gets `reports` tokens by the client credentials grant and
 * may introspect tokens; password, refresh and revoke requests without client credentials work as before).
 *
 * Swagger UI is at /docs (log in with its Authorize button) and the OpenAPI document at /docs/json.
 * A single-page app on browser sessions (the refresh token in an httpOnly cookie) is at /app/.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import pg from 'pg'
import { requestTimeouts } from './timeouts.js'
import tokenAuth, { createPostgresStore, createRedisStore, hashPassword, migratePostgresStore, notFoundHandler, requestLogSerializer, type AuthStore, type KeyOption, type UserRecord } from 'fastify-token-auth'

type Env = Record<string, string | undefined>

/** Reads a JWK Set file (`{"keys":[…]}`); each JWK brings its own kid and alg, which the plugin checks. */
function readKeysFile (path: string): KeyOption[] {
  let set: unknown
  try {
    set = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new Error(`JWT_KEYS_FILE: cannot read ${path} as JSON (${(error as Error).message})`)
  }
  const keys = (set as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`JWT_KEYS_FILE: ${path} is not a JWK Set with keys`)
  return keys.map((jwk: KeyOption['key']) => ({ key: jwk }))
}

/**
 * Fastify's `trustProxy` from TRUST_PROXY: the number of proxies in front of the app, or their
 * addresses. Never `true`: trusting every hop lets each client write its own address into
 * X-Forwarded-For, a new one for every password guess.
 */
export function trustProxyOf (value: string | undefined): false | string[] | ((address: string, hop: number) => boolean) {
  if (value === undefined || value.trim() === '' || value.trim() === '0') return false
  const text = value.trim()
  if (/^(true|yes|on|all)$/i.test(text)) {
    throw new Error('TRUST_PROXY=true would let every client choose its own address (X-Forwarded-For); ' +
      'set the number of proxies in front of the app (e.g. TRUST_PROXY=1) or their addresses (e.g. TRUST_PROXY=10.0.0.1,10.0.0.0/8)')
  }
  if (/^\d+$/.test(text)) {
    const hops = Number(text)
    // A function: Fastify reads a number as "trust no proxy", since the immediate peer is not
    // checked. The client address is then the one the last `hops` proxies appended.
    return (_address, hop) => hop < hops
  }
  const proxies = text.split(',').map((entry) => entry.trim())
  for (const entry of proxies) {
    const [address = '', bits, extra] = entry.split('/')
    const family = isIP(address)
    const max = family === 4 ? 32 : 128
    if (family === 0 || extra !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) >= 1 && Number(bits) <= max))) {
      throw new Error(`TRUST_PROXY: "${entry}" is neither a number of proxies nor a proxy address or CIDR range`)
    }
  }
  return proxies
}

/** Where the server listens when HOST and PORT are unset. */
const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_PORT = 3000

/** The HOST and PORT that `start()` listens on. */
function listenAddress (env: Env): { host: string, port: number } {
  return { host: env.HOST ?? DEFAULT_HOST, port: env.PORT === undefined ? DEFAULT_PORT : Number(env.PORT) }
}

/**
 * The issuer when JWT_ISSUER is unset: the address the server listens on, so that the metadata's
 * URLs lead back to this server whatever PORT says. A client that discovers the server at
 * http://HOST:PORT expects that very issuer in the metadata (RFC 8414 §3.3) and sends its token
 * requests to the `token_endpoint` it finds there. A wildcard HOST (0.0.0.0, ::) names the
 * loopback address; PORT=0, a port chosen only when the server listens, cannot be named
 * beforehand and gives `undefined` (the caller keeps port 3000 and says so).
 */
export function defaultIssuer (env: Env): string | undefined {
  const { host, port } = listenAddress(env)
  if (port === 0) return undefined
  const named = host === '' || host === '0.0.0.0' || host === '::' ? DEFAULT_HOST : host
  return `http://${isIP(named) === 6 ? `[${named}]` : named}:${port}`
}

/** The single-page app's files (examples/app/), served as they are: plain HTML, CSS and JavaScript. */
const APP_FILES = [['', 'index.html', 'text/html'], ['app.js', 'app.js', 'text/javascript'], ['app.css', 'app.css', 'text/css']] as const

/**
 * Serves the single-page app at /app/ with three routes (no static-file plugin for three files).
 * Its Content-Security-Policy allows scripts, styles and requests of this origin only, and no
 * inline script: an injected `<script>` could not run, nor send anything elsewhere.
 */
function serveApp (app: FastifyInstance): void {
  const headers = {
    'content-security-policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache'
  }
  for (const [route, file, type] of APP_FILES) {
    const body = readFileSync(fileURLToPath(new URL(`app/${file}`, import.meta.url)), 'utf8')
    app.get(`/app/${route}`, { schema: { hide: true } }, async (_request, reply) => reply.headers({ ...headers, 'content-type': `${type}; charset=utf-8` }).send(body))
  }
  app.get('/app', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/app/'))
}

/** Builds the example app from environment variables; `start()` below listens. */
export async function buildServer (env: Env = process.env): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: env.LOG_LEVEL ?? 'info',
      // Never let a bearer token or client credentials reach a log line: not in the headers,
      // should a serializer log them, and not in a query string a careless client used.
      // Node hands Fastify's "client error" line (at trace) the raw bytes of a request it could
      // not parse, `err.rawPacket`: headers, cookies and body, a password or a token among them.
      redact: ['req.headers.authorization', 'req.headers.cookie', 'err.rawPacket'],
      serializers: { req: requestLogSerializer }
    },
    trustProxy: trustProxyOf(env.TRUST_PROXY),
    // A client that sends its headers and then its body a byte at a time, or never, would
    // otherwise hold its connection for ever (examples/timeouts.ts).
    ...requestTimeouts(env.REQUEST_TIMEOUT)
  })
  // Fastify's own 404 writes the raw URL into its log message, past the serializer above.
  app.setNotFoundHandler(notFoundHandler)

  const keys = env.JWT_KEYS_FILE === undefined || env.JWT_KEYS_FILE === '' ? undefined : readKeysFile(env.JWT_KEYS_FILE)
  let secret = env.JWT_SECRET
  if (keys !== undefined) {
    if (secret !== undefined && secret !== '') app.log.warn('JWT_KEYS_FILE is set: JWT_SECRET is ignored')
  } else if (secret === undefined || secret === '') {
    secret = randomBytes(32).toString('base64url')
    app.log.warn('JWT_SECRET is not set: using a random secret for this run; tokens will not survive a restart')
  }

  let issuer = env.JWT_ISSUER ?? defaultIssuer(env)
  if (issuer === undefined) {
    issuer = `http://${DEFAULT_HOST}:${DEFAULT_PORT}`
    app.log.warn(`PORT=0 and JWT_ISSUER is not set: tokens and metadata name ${issuer}; set JWT_ISSUER to the address clients use`)
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
    store = createRedisStore({ client, prefix: env.REDIS_PREFIX ?? 'fastify-token-auth-example:' })
  } else if (env.STORE_DATABASE_URL !== undefined && env.STORE_DATABASE_URL !== '') {
    // The same state in PostgreSQL (docs/stores.md). Not DATABASE_URL: that names the app's own database.
    const pool = new pg.Pool({ connectionString: env.STORE_DATABASE_URL, connectionTimeoutMillis: 2000, statement_timeout: 2000 })
    pool.on('error', (error) => app.log.warn({ err: { message: error.message } }, 'postgres connection error'))
    app.addHook('onClose', async () => { await pool.end() })
    const schema = env.STORE_DATABASE_SCHEMA
    // Tables are made here, at start, never at request time.
    await migratePostgresStore(pool, { schema })
    store = createPostgresStore({ pool, schema })
  }

  // DEMO_CLIENT_SECRET: a service that calls /reports with a token of its own (client credentials)
  // and may introspect tokens; logins without client credentials stay open beside it (publicClient).
  const demoSecret = env.DEMO_CLIENT_SECRET === undefined || env.DEMO_CLIENT_SECRET === '' ? undefined : env.DEMO_CLIENT_SECRET
  const services = demoSecret === undefined
    ? {}
    : {
        clients: [{ id: 'demo-service', secretHash: await hashPassword(demoSecret), grants: ['client_credentials' as const], scopes: ['reports'], introspect: true }],
        publicClient: true
      }

  // Before the plugin: @fastify/swagger documents only the routes added after it.
  await app.register(swagger, {
    openapi: { info: { title: 'fastify-token-auth example', version: '1.0.0' } }
  })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // The page has a login dialog and shares its origin, and so the session cookie's reach, with
    // the app: the same guards as /app/. @fastify/swagger-ui's own policy, framed by no page at
    // all, and without upgrade-insecure-requests, which would send an http server's calls to https.
    staticCSP: true,
    transformStaticCSP: (policy: string) => policy.replace("frame-ancestors 'self'", "frame-ancestors 'none'").replace(/\s*upgrade-insecure-requests;/, ''),
    uiHooks: {
      onRequest (_request, reply, done) {
        reply.headers({ 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' })
        done()
      }
    }
  })

  await app.register(tokenAuth, {
    ...(keys === undefined ? { secret } : { keys }),
    store,
    refreshTokens: true,
    revocableAccessTokens: true,
    // Pages that send `x-token-delivery: cookie` (the app at /app/) get the refresh token in an
    // httpOnly cookie; API clients, which do not, get it in the JSON body as before.
    browserSessions: true,
    scopes: { profile: 'Read your own profile', admin: 'Administer the service', reports: 'Read the reports (services, by client credentials)' },
    ...services,
    issuer,
    audience: env.JWT_AUDIENCE ?? 'fastify-token-auth-example',
    accessTokenTtl: env.ACCESS_TOKEN_TTL === undefined ? 900 : Number(env.ACCESS_TOKEN_TTL),
    findUser: (username) => users.get(username) ?? null,
    // Requests other than logins go first when hashing and the event loop want the same core.
    password: { threadPoolPriority: env.THREAD_POOL_PRIORITY === undefined ? 10 : Number(env.THREAD_POOL_PRIORITY) },
    ...(throttling ? {} : { rateLimit: false, loginThrottle: false })
  })

  app.get('/public', { schema: { summary: 'Anyone may call this' } }, async () => ({ message: 'Hello, world!' }))
  app.get('/protected', { schema: { summary: 'Any logged-in user' }, preHandler: app.authenticate }, async () => ({ message: 'Hello, authenticated user!' }))
  app.get('/me', { schema: { summary: 'Who the token is for' }, preHandler: app.authenticate }, async (request) => ({
    sub: request.user.sub,
    scope: request.user.scope.join(' ')
  }))
  app.get('/admin', { schema: { summary: 'Needs the admin scope' }, preHandler: [app.authenticate, app.requireScopes('admin')] }, async () => ({ message: 'Hello, admin!' }))
  // Registered with or without DEMO_CLIENT_SECRET: without it no token carries `reports`, so 401 or 403.
  app.get('/reports', { schema: { summary: 'Needs the reports scope (a service token)' }, preHandler: [app.authenticate, app.requireScopes('reports')] }, async (request) => ({
    client: request.user.clientId,
    reports: [{ id: 1, title: 'Daily sign-ins' }]
  }))
  serveApp(app)
  return app
}

/** Listens on HOST:PORT (default 127.0.0.1:3000). */
export async function start (env: Env = process.env): Promise<FastifyInstance> {
  const app = await buildServer(env)
  await app.listen(listenAddress(env))
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  start().catch((error: unknown) => {
    console.error(error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : error)
    process.exit(1)
  })
}
