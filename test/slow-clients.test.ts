import t from 'tap'
import net, { type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildServer, start } from '../examples/server.js'
import { buildServer as buildPostgresExample } from '../examples/postgres/server.js'
import { CHEAP, form, NO_POSTGRES, postgresPool, SECRET, testSchema } from './helper.js'

/*
 * Slow clients against the example servers, over real sockets on 127.0.0.1: a client that sends
 * its headers, or its headers and part of its body, and then waits (slowloris) must lose its
 * connection once REQUEST_TIMEOUT has passed, while a slow but complete request, a login that
 * waits for its answer and an idle keep-alive connection are left alone.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const QUIET = { LOG_LEVEL: 'silent', JWT_SECRET: SECRET }

/** A raw connection: what it has received, and when (ms after opening) it was closed. */
function connect (tt: Tap, port: number) {
  const opened = Date.now()
  const socket = net.connect(port, '127.0.0.1')
  let received = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { received += chunk })
  socket.on('error', () => {})
  const closed = new Promise<number>((resolve) => socket.on('close', () => { resolve(Date.now() - opened) }))
  tt.teardown(() => { socket.destroy() })
  return {
    socket,
    received: () => received,
    /** The time it closed, or `undefined` when it is still open after `ms`. */
    closedWithin: (ms: number) => Promise.race([closed, new Promise<undefined>((resolve) => setTimeout(() => { resolve(undefined) }, ms))]),
    /** Resolves once `count` answers have arrived in full (each ends with its JSON body). */
    answers: async (count: number) => {
      while ((received.match(/HTTP\/1\.1 \d{3} /g) ?? []).length < count || !received.endsWith('}')) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return received
    }
  }
}

const portOf = (app: FastifyInstance) => (app.server.address() as AddressInfo).port
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const LOGIN = form({ grant_type: 'password', username: 'user1', password: 'password1' })
const tokenHead = (length: number) => 'POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
  `Content-Length: ${length}\r\n\r\n`

t.test('example server: a request that has not fully arrived within REQUEST_TIMEOUT is answered 408 and closed', async (t) => {
  const app = await start({ ...QUIET, PORT: '0', REQUEST_TIMEOUT: '1' })
  t.teardown(() => app.close())
  const port = portOf(app)

  // Headers, then a part of the body it never finishes (R-U-Dead-Yet); headers never finished
  // (slowloris). Node checks once a second, so each goes within 1 to 2 s of its first byte.
  const body = connect(t, port)
  body.socket.write(tokenHead(LOGIN.length) + LOGIN.slice(0, 10))
  const headers = connect(t, port)
  headers.socket.write('POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  const [bodyClosed, headersClosed] = await Promise.all([body.closedWithin(5000), headers.closedWithin(5000)])
  t.ok(bodyClosed !== undefined && bodyClosed < 3500, `a half-sent body loses its connection (closed after ${String(bodyClosed)} ms)`)
  t.ok(headersClosed !== undefined && headersClosed < 3500, `half-sent headers lose theirs (closed after ${String(headersClosed)} ms)`)
  for (const [name, client] of [['body', body], ['headers', headers]] as const) {
    t.match(client.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/, `${name}: answered 408`)
    t.match(client.received(), /"statusCode":408/, `${name}: in Fastify's error shape`)
    t.notMatch(client.received(), /at .*\.(js|ts):\d+/, `${name}: no stack trace`)
  }

  // The server is still there for everyone else.
  const res = await fetch(`http://127.0.0.1:${port}/public`)
  t.equal(res.status, 200, 'other clients are served')
})

t.test('example server: slow but complete requests, and idle keep-alive connections, are left alone', async (t) => {
  // Throttling off, so that the 100 logins below all reach the hashing pool.
  const app = await start({ ...QUIET, PORT: '0', REQUEST_TIMEOUT: '1', RATE_LIMIT: 'off' })
  t.teardown(() => app.close())
  const port = portOf(app)

  // A login whose body comes in six pieces over ~0.6 s: within the second it has.
  const slow = connect(t, port)
  slow.socket.write(tokenHead(LOGIN.length))
  for (let i = 0; i < 6; i++) {
    await sleep(100)
    slow.socket.write(LOGIN.slice(Math.floor(i * LOGIN.length / 6), Math.floor((i + 1) * LOGIN.length / 6)))
  }
  const answer = await slow.answers(1)
  t.match(answer, /^HTTP\/1\.1 200 OK\r\n/, 'the slow login is answered 200')
  t.match(answer, /"access_token":"/, 'with a token')

  // Only the receiving is timed: 100 logins at once queue for the hashing pool up to its maxWait
  // (2 s), and those answered after more than the request timeout still get their tokens.
  const logins = await Promise.all(Array.from({ length: 100 }, async () => {
    const client = connect(t, port)
    const sent = Date.now()
    client.socket.write(tokenHead(LOGIN.length) + LOGIN)
    const text = await client.answers(1)
    return { status: Number(text.slice(9, 12)), ms: Date.now() - sent }
  }))
  t.same([...new Set(logins.map((l) => l.status))].filter((s) => s !== 200 && s !== 503), [], 'every login answered 200, or 503 after its wait in the queue')
  const late = logins.filter((l) => l.status === 200 && l.ms > 1200)
  t.ok(late.length > 0, `logins answered after the 1 s request timeout got tokens (${late.length}, the latest after ${Math.max(...logins.map((l) => l.ms))} ms)`)

  // After a complete request, the connection idles under Fastify's keep-alive timeout (72 s),
  // not the request timeout: a second request 2.5 s later on it is served.
  const idle = connect(t, port)
  idle.socket.write('GET /public HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await idle.answers(1)
  t.equal(await idle.closedWithin(2500), undefined, 'the idle keep-alive connection stays open')
  idle.socket.write('GET /public HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  t.equal((await idle.answers(2)).match(/HTTP\/1\.1 200 OK\r\n/g)?.length, 2, 'and serves the next request')
})

t.test('example server: REQUEST_TIMEOUT is 10 s by default and refuses what is not whole seconds', async (t) => {
  const app = await buildServer(QUIET)
  t.teardown(() => app.close())
  t.equal((app.initialConfig as { requestTimeout?: number }).requestTimeout, 10_000, 'Fastify requestTimeout 10 s')
  t.equal(app.server.requestTimeout, 10_000, 'on the server')
  t.equal(app.server.headersTimeout, 10_000, 'the headers within the same 10 s, not Node\'s 60 s')

  const custom = await buildServer({ ...QUIET, REQUEST_TIMEOUT: ' 30 ' })
  t.teardown(() => custom.close())
  t.equal(custom.server.requestTimeout, 30_000, 'REQUEST_TIMEOUT=30: 30 s')

  for (const value of ['0', '-1', '1.5', 'ten', '3601', '1e3']) {
    await t.rejects(buildServer({ ...QUIET, REQUEST_TIMEOUT: value }), { message: `REQUEST_TIMEOUT: "${value}" is not a whole number of seconds from 1 to 3600` }, `REQUEST_TIMEOUT=${value} is refused at start`)
  }
})

t.test('PostgreSQL example: the same request timeout', { skip: NO_POSTGRES }, async (t) => {
  const pool = postgresPool(t)
  const schema = await testSchema(t, pool)
  const app = await buildPostgresExample({ pool, schema, logLevel: 'silent', hashParameters: CHEAP, accountRateLimit: false, requestTimeout: 1 })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const signUp = connect(t, portOf(app))
  signUp.socket.write('POST /signup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"username":')
  const closed = await signUp.closedWithin(5000)
  t.ok(closed !== undefined && closed < 3500, `a half-sent sign-up loses its connection (closed after ${String(closed)} ms)`)
  t.match(signUp.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/, 'answered 408')

  const defaults = await buildPostgresExample({ pool, schema, logLevel: 'silent', hashParameters: CHEAP, accountRateLimit: false })
  t.teardown(() => defaults.close())
  t.equal(defaults.server.requestTimeout, 10_000, '10 s by default')
})
