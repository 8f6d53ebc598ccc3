/*
 * The PostgreSQL example: users in a PostgreSQL table, sessions (refresh-token families and
 * revocations) in the PostgreSQL store, and the account routes every app needs: sign-up,
 * password change, disabling a user. docs/postgres.md walks through it.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run example:postgres
 *
 * Environment: DATABASE_URL (required), DATABASE_SCHEMA (default public), HOST, PORT, JWT_SECRET
 * (>= 32 bytes; random per run when unset), ADMIN_PASSWORD (creates the user "admin", with the
 * admin scope, when there is none yet), THREAD_POOL_PRIORITY, REQUEST_TIMEOUT (seconds a client
 * has to send a whole request, default 10), LOG_LEVEL.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import pg from 'pg'
import tokenAuth, { createPostgresStore, hashPassword, migratePostgresStore, notFoundHandler, requestLogSerializer, verifyPassword, type HashParameters } from 'fastify-token-auth'
import { requestTimeouts } from '../timeouts.js'
import { accountRoutes, type AccountOptions } from './accounts.js'
import { createUsers, loadCommonPasswords, passwordProblem, usersMigration } from './users.js'

/** The plugin's default cap on password length, which the sign-up rules follow. */
const MAX_PASSWORD_LENGTH = 1024

export interface ServerOptions {
  /** A pool of your own; otherwise one is made from `databaseUrl` and ended on close. */
  pool?: pg.Pool
  databaseUrl?: string
  /** Where the users and the store's tables live; default `public`. */
  schema?: string
  jwtSecret?: string
  /** Creates the user "admin" (scopes profile and admin) with this password, unless "admin" exists. */
  adminPassword?: string
  /** argon2id parameters; the plugin's (OWASP's) defaults unless given. */
  hashParameters?: HashParameters
  accountRateLimit?: AccountOptions['rateLimit']
  logLevel?: string
  /** Where the log goes; standard output unless given (tests). */
  logStream?: { write: (line: string) => void }
  /**
   * The plugin's `password.threadPoolPriority`: the hashing threads' priority (0–19), so that a
   * flood of logins or sign-ups leaves the event loop most of a core it shares with a hash.
   * Default 10, as in the example server.
   */
  threadPoolPriority?: number
  /** Seconds a client has to send a whole request (REQUEST_TIMEOUT); default 10. */
  requestTimeout?: number | string
}

export async function buildServer (options: ServerOptions): Promise<FastifyInstance> {
  const schema = options.schema ?? 'public'
  const app = Fastify({
    logger: {
      level: options.logLevel ?? 'info',
      // `err.rawPacket`: the raw bytes of a request Node could not parse (logged at trace).
      redact: ['req.headers.authorization', 'req.headers.cookie', 'err.rawPacket'],
      serializers: { req: requestLogSerializer },
      ...(options.logStream === undefined ? {} : { stream: options.logStream })
    },
    // A client that trickles its body, or never sends it, is cut off (examples/timeouts.ts).
    ...requestTimeouts(options.requestTimeout)
  })
  // Fastify's own 404 writes the raw URL into its log message, past the serializer above.
  app.setNotFoundHandler(notFoundHandler)
  let pool = options.pool
  if (pool === undefined) {
    if (options.databaseUrl === undefined || options.databaseUrl === '') throw new Error('DATABASE_URL is not set: the example needs a PostgreSQL')
    // Fail fast while PostgreSQL is away (the plugin answers 503), and stop a query PostgreSQL
    // is stuck on, rather than letting requests pile up.
    pool = new pg.Pool({ connectionString: options.databaseUrl, connectionTimeoutMillis: 2000, statement_timeout: 2000, max: 10 })
    const own = pool
    app.addHook('onClose', async () => { await own.end() })
  }
  // pg emits `error` when the backend of an idle connection goes away; unheard, it would end the process.
  pool.on('error', (error) => app.log.warn({ err: { message: error.message } }, 'postgres connection error'))

  // Migrations run here, before the server listens: never at request time.
  await pool.query(usersMigration(schema))
  await migratePostgresStore(pool, { schema })

  const users = createUsers(pool, schema)
  const hashParameters = options.hashParameters ?? {}
  const commonPasswords = loadCommonPasswords()

  if (options.adminPassword !== undefined && options.adminPassword !== '') {
    const problem = passwordProblem(options.adminPassword, 'admin', MAX_PASSWORD_LENGTH, commonPasswords)
    if (problem !== undefined) throw new Error(`ADMIN_PASSWORD: ${problem}`)
    if (await users.create('admin', await hashPassword(options.adminPassword, hashParameters), ['profile', 'admin'])) {
      app.log.info('created the user "admin"')
    } else {
      // ADMIN_PASSWORD creates "admin"; it never changes an "admin" that exists. Say so when it
      // would not log in as that one (changed since, or a name taken before sign-ups reserved it).
      const admin = await users.find('admin')
      if (admin === null || !await verifyPassword(admin.passwordHash, options.adminPassword) || !admin.scopes?.includes('admin')) {
        app.log.warn('the user "admin" exists already and ADMIN_PASSWORD does not log in as it with the admin scope: left as it is')
      }
    }
  }

  let secret = options.jwtSecret
  if (secret === undefined || secret === '') {
    secret = randomBytes(32).toString('base64url')
    app.log.warn('JWT_SECRET is not set: using a random secret for this run; tokens will not survive a restart')
  }

  const store = createPostgresStore({ pool, schema })
  // Expired rows never count; this only gives their space back.
  const sweeper = setInterval(() => { store.sweep().catch((error: unknown) => app.log.warn({ err: error }, 'store sweep failed')) }, 5 * 60_000)
  sweeper.unref()
  app.addHook('onClose', async () => { clearInterval(sweeper) })

  await app.register(tokenAuth, {
    secret,
    store,
    refreshTokens: true,
    // Checked against the store on every request: a revoked or disabled user's tokens stop at once.
    revocableAccessTokens: true,
    password: { ...hashParameters, maxLength: MAX_PASSWORD_LENGTH, threadPoolPriority: options.threadPoolPriority ?? 10 },
    findUser: (username) => users.find(username),
    // Runs after a login whose hash has outdated parameters; only while the stored hash is
    // still the one just checked, so a password changed meanwhile is never overwritten.
    onPasswordRehash: async (user, newHash) => { await users.setPasswordHash(String(user.id), newHash, user.passwordHash) }
  })
  await app.register(accountRoutes, {
    users,
    maxPasswordLength: MAX_PASSWORD_LENGTH,
    commonPasswords,
    // Sign-ups: 5 a minute per address. Password changes: 5 an hour per account, about the pace
    // the login throttle allows guesses at one account (docs/login-throttling.md).
    rateLimit: options.accountRateLimit ?? { signUp: { max: 5, timeWindow: 60_000 }, passwordChange: { max: 5, timeWindow: 3_600_000 } }
  })

  app.get('/me', { preHandler: app.authenticate }, async (request) => ({ sub: request.user.sub, scope: request.user.scope.join(' ') }))
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const env = process.env
  buildServer({
    databaseUrl: env.DATABASE_URL,
    schema: env.DATABASE_SCHEMA,
    jwtSecret: env.JWT_SECRET,
    adminPassword: env.ADMIN_PASSWORD,
    logLevel: env.LOG_LEVEL,
    threadPoolPriority: env.THREAD_POOL_PRIORITY === undefined ? undefined : Number(env.THREAD_POOL_PRIORITY),
    requestTimeout: env.REQUEST_TIMEOUT
  })
    .then((app) => app.listen({ host: env.HOST ?? '127.0.0.1', port: env.PORT === undefined ? 3000 : Number(env.PORT) }))
    .catch((error: unknown) => {
      console.error(error instanceof Error ? error.message : error)
      process.exit(1)
    })
}
