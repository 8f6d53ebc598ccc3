import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { createRedisStore } from '../lib/index.js'
import { bearer, buildApp, freePort, NO_REDIS, REDIS_URL, redisClient, testPrefix, tokenRequest, type BuildOptions } from './helper.js'

/*
 * Redis going away while the app runs: every request gets a clear answer (503 with
 * Retry-After on the endpoints, fail-closed in `authenticate`), nothing crashes, nothing leaks
 * a stack trace, and once Redis is back everything works again without a restart.
 *
 * The outage is a TCP proxy in front of the real Redis at REDIS_URL, closed and reopened on
 * the same port: the shared Redis itself is never stopped.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

interface Proxy {
  port: number
  stop: () => Promise<void>
  start: () => Promise<void>
}

async function redisProxy (tt: Tap): Promise<Proxy> {
  const target = new URL(REDIS_URL as string)
  const sockets = new Set<Socket>()
  let server: Server | undefined
  let port = 0
  async function start (): Promise<void> {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname)
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
  tt.notMatch(res.body, /\bat .*:\d+|ECONNREFUSED|Stream|ioredis|writeable/i, 'no stack, no driver message')
}

async function faultyApp (tt: Tap, port: number, plugin: BuildOptions['plugin'] = {}) {
  const prefix = testPrefix()
  // What the README advises for the host's client: fail at once while Redis is away, retry the connection quickly.
  const client = new Redis({ port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  client.on('error', () => {})
  tt.teardown(() => client.disconnect())
  // A direct client, not through the proxy, to delete the test's keys at teardown.
  await redisClient(tt, prefix)
  const app = await buildApp(tt, {
    plugin: { store: createRedisStore({ client, prefix }), refreshTokens: true, revocableAccessTokens: true, ...plugin }
  })
  return { app, client }
}

async function login (app: FastifyInstance) {
  return await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
}

/** Polls until `check` holds, for at most 10 s. */
async function eventually (check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return true
    await sleep(100)
  }
  return false
}

t.test('Redis away and back', { skip: NO_REDIS }, async (t) => {
  const rejections: unknown[] = []
  const onRejection = (reason: unknown) => { rejections.push(reason) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })

  t.test('503 with Retry-After from /token and /revoke, fail-closed authenticate, then recovery', async (t) => {
    const proxy = await redisProxy(t)
    const { app, client } = await faultyApp(t, proxy.port)
    await eventually(async () => client.status === 'ready')
    const session = (await login(app)).json()
    t.type(session.refresh_token, 'string')

    await proxy.stop()
    t.ok(await eventually(async () => client.status !== 'ready'), 'the client saw the connection drop')
    assertUnavailable(t, await login(app), 'password grant')
    assertUnavailable(t, await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: session.refresh_token }), 'refresh grant')
    assertUnavailable(t, await tokenRequest(app, { token: session.refresh_token }, {}, '/revoke'), 'revocation')
    const guarded = await app.inject({ url: '/protected', headers: bearer(session.access_token) })
    t.equal(guarded.statusCode, 503, 'authenticate fails closed')
    t.equal(guarded.json().code, 'FST_TOKEN_AUTH_STORE_UNAVAILABLE')
    t.equal(guarded.headers['retry-after'], '1')
    t.notOk('stack' in guarded.json())
    t.equal((await app.inject('/public')).statusCode, 200, 'routes without authenticate are untouched')

    await proxy.start()
    t.ok(await eventually(async () => (await login(app)).statusCode === 200), 'logins work again, without a restart')
    const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: session.refresh_token })
    t.equal(refreshed.statusCode, 200, 'the session made before the outage lives on')
    t.equal((await app.inject({ url: '/protected', headers: bearer(session.access_token) })).statusCode, 200)
    t.equal((await tokenRequest(app, { token: refreshed.json().refresh_token }, {}, '/revoke')).statusCode, 200)
  })

  t.test('revocableAccessTokens: { failOpen: true } accepts tokens unchecked while the store is away', async (t) => {
    const proxy = await redisProxy(t)
    const { app, client } = await faultyApp(t, proxy.port, { revocableAccessTokens: { failOpen: true } })
    await eventually(async () => client.status === 'ready')
    const { access_token: access } = (await login(app)).json()
    await proxy.stop()
    await eventually(async () => client.status !== 'ready')
    t.equal((await app.inject({ url: '/protected', headers: bearer(access) })).statusCode, 200)
  })

  t.test('a client with an offline queue, pointed at a closed port: the store\'s own timeout answers', async (t) => {
    const port = await freePort()

    // ioredis's defaults: commands wait in the offline queue while it retries the connection.
    const client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 200 })
    client.on('error', () => {})
    t.teardown(() => client.disconnect())
    const app = await buildApp(t, { plugin: { store: createRedisStore({ client, prefix: testPrefix(), commandTimeout: 100 }), refreshTokens: true } })
    const started = Date.now()
    assertUnavailable(t, await login(app), 'password grant')
    t.ok(Date.now() - started < 5000, 'answered within the timeout, not after the driver gave up')
  })

  t.test('nothing was left unhandled', async (t) => {
    // Let late rejections of timed-out commands surface before looking.
    await sleep(300)
    t.same(rejections, [])
  })
})
