import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { createPostgresStore } from '../lib/index.js'
import { bearer, buildApp, DATABASE_URL, NO_POSTGRES, postgresPool, testSchema, tokenRequest } from './helper.js'

/*
 * PostgreSQL going away while the app runs, through the plugin: every request gets a clear
 * answer (503 with Retry-After from the token endpoint, fail-closed `authenticate`), nothing
 * crashes, and once PostgreSQL answers again everything works without a restart.
 *
 * Two faults: the port the pool connects to closes (a TCP proxy in front of the real server,
 * closed and reopened on the same port: the shared PostgreSQL itself is never stopped), and
 * the pool's backends are killed with pg_terminate_backend in the middle of a query.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

interface Proxy {
  port: number
  stop: () => Promise<void>
  start: () => Promise<void>
}

async function postgresProxy (tt: Tap): Promise<Proxy> {
  const target = new URL(DATABASE_URL as string)
  const sockets = new Set<Socket>()
  let server: Server | undefined
  let port = 0
  async function start (): Promise<void> {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname)
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on('error', () => {})
        socket.on('close', () => { sockets.delete(socket); client.destroy(); upstream.destroy() })
      }
      client.pipe(upstream).pipe(client)
    })
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as { port: number }).port
  }
  async function stop (): Promise<void> {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server?.close(resolve))
  }
  await start()
  tt.teardown(stop)
  return { get port () { return port }, start, stop }
}

function assertUnavailable (tt: Tap, res: LightMyRequestResponse, message: string): void {
  tt.equal(res.statusCode, 503, message)
  tt.same(res.json(), { error: 'temporarily_unavailable', error_description: res.json().error_description }, 'the RFC 6749 §5.2 shape')
  tt.equal(res.headers['retry-after'], '1')
  tt.equal(res.headers['cache-control'], 'no-store')
  tt.notMatch(res.body, /\bat .*:\d+|ECONNREFUSED|terminat|postgres|relation/i, 'no stack, no driver message')
}

const PASSWORD_GRANT = { grant_type: 'password', username: 'user1', password: 'password1' }

/** Polls until `check` holds, for at most 10 s. */
async function eventually (check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return true
    await sleep(100)
  }
  return false
}

async function appOn (tt: Tap, connectionString: string, applicationName: string): Promise<{ app: FastifyInstance, schema: string }> {
  // The schema is made through a direct pool: the app's may point at the proxy.
  const schema = await testSchema(tt, postgresPool(tt))
  const pool = postgresPool(tt, { connectionString, application_name: applicationName, connectionTimeoutMillis: 1000 })
  const app = await buildApp(tt, {
    plugin: { store: createPostgresStore({ pool, schema, queryTimeout: 5000 }), refreshTokens: true, revocableAccessTokens: true }
  })
  return { app, schema }
}

t.test('PostgreSQL away and back', { skip: NO_POSTGRES }, async (t) => {
  const rejections: unknown[] = []
  const onRejection = (reason: unknown) => { rejections.push(reason) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })

  t.test('its port closed: 503 with Retry-After from /token, fail-closed authenticate, then recovery without a restart', async (t) => {
    const proxy = await postgresProxy(t)
    const { app } = await appOn(t, `postgres://postgres@127.0.0.1:${proxy.port}/test`, 'fja-test-closed-port')
    const session = (await tokenRequest(app, PASSWORD_GRANT)).json()
    t.type(session.refresh_token, 'string')

    await proxy.stop()
    assertUnavailable(t, await tokenRequest(app, PASSWORD_GRANT), 'password grant')
    assertUnavailable(t, await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: session.refresh_token }), 'refresh grant')
    const guarded = await app.inject({ url: '/protected', headers: bearer(session.access_token) })
    t.equal(guarded.statusCode, 503, 'authenticate fails closed: revocationState cannot answer')
    t.equal(guarded.json().code, 'FST_TOKEN_AUTH_STORE_UNAVAILABLE')
    t.equal(guarded.headers['retry-after'], '1')
    t.equal((await app.inject('/public')).statusCode, 200, 'routes without authenticate are untouched')

    await proxy.start()
    t.ok(await eventually(async () => (await tokenRequest(app, PASSWORD_GRANT)).statusCode === 200), 'logins work again, without a restart')
    const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: session.refresh_token })
    t.equal(refreshed.statusCode, 200, 'the session made before the outage lives on: it is durable')
    t.equal((await app.inject({ url: '/protected', headers: bearer(refreshed.json().access_token) })).statusCode, 200)
  })

  t.test('its backends killed mid-query (pg_terminate_backend): 503, then the pool reconnects by itself', async (t) => {
    const name = `fja-test-terminate-${process.pid}`
    const { app, schema } = await appOn(t, DATABASE_URL as string, name)
    const admin = postgresPool(t)
    const session = (await tokenRequest(app, PASSWORD_GRANT)).json()
    t.equal((await tokenRequest(app, { ...PASSWORD_GRANT, password: 'wrong-password' })).statusCode, 400, 'a failure leaves counter rows behind')

    /** Holds every row of `table` locked, so that the app's next write to one of them waits. */
    async function lockAndKill (table: string, request: () => Promise<LightMyRequestResponse>): Promise<LightMyRequestResponse> {
      const holder = await admin.connect()
      try {
        await holder.query('BEGIN')
        await holder.query(`SELECT 1 FROM "${schema}".fastify_token_auth_${table} FOR UPDATE`)
        const pending = request()
        // At least one: under load an earlier statement of the app may still be waiting too.
        t.ok(await eventually(async () => ((await admin.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [name])).rowCount ?? 0) >= 1), 'the app waits for the row')
        const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name])
        t.ok((killed.rowCount ?? 0) >= 1, 'its backends were terminated')
        return await pending
      } finally {
        await holder.query('COMMIT')
        holder.release()
      }
    }

    assertUnavailable(t, await lockAndKill('counters', () => tokenRequest(app, PASSWORD_GRANT)), 'password grant')
    assertUnavailable(t, await lockAndKill('families', () => tokenRequest(app, { grant_type: 'refresh_token', refresh_token: session.refresh_token })), 'refresh grant')

    t.equal((await tokenRequest(app, PASSWORD_GRANT)).statusCode, 200, 'logins work again at once')
    const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: session.refresh_token })
    t.equal(refreshed.statusCode, 200, 'the killed rotation never happened: the token is still current')
    t.equal((await app.inject({ url: '/protected', headers: bearer(refreshed.json().access_token) })).statusCode, 200)
  })

  t.test('no unhandled rejection along the way', async (t) => {
    t.same(rejections, [])
  })
})
