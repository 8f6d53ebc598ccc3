import t, { type Test } from 'tap'
import argon2 from 'argon2'
import type { FastifyInstance, FastifyRequest, FastifyServerOptions, LightMyRequestResponse } from 'fastify'
import type { EventEmitter } from 'node:events'
import http from 'node:http'
import http2, { type ClientHttp2Stream, type ServerHttp2Stream } from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp, captureLogs, type LooseOptions, cheapHash, countArgon2Verifies, form, FORM, SECRET, tokenRequest } from './helper.js'
import { hashPassword, type UserRecord } from '../lib/index.js'
import { DEFAULTS } from '../lib/options/defaults.js'
import { resolveOptions } from '../lib/options/resolve.js'

/*
 * Bounded password hashing under a login flood: at most `maxConcurrent` verifications run and
 * `maxQueue` wait, each for at most `maxWait` ms; every login past that is answered 503, without
 * hashing, so neither the memory held by argon2 (its memory cost × the logins running) nor the
 * wait of a login can grow with the size of the flood.
 *
 * The hashes here are deliberately slow (argon2id, 19 MiB, 10 passes: a good fraction of a second
 * for one verify), so that "at once" is plain: the 503s all come back while the first
 * verification is still running. Those tests set a `maxWait` far past their run, so that only the
 * count bounds are at work; the last one is about `maxWait`.
 */

const NO_TIMEOUT = 60_000

const SLOW = Object.freeze({ memoryCost: 19456, timeCost: 10, parallelism: 1 })

interface Answer {
  res: LightMyRequestResponse
  /** How many answers had come back before this one. */
  order: number
}

/** Sends `count` logins at once and records the order the answers come back in. */
async function flood (send: (i: number) => Promise<LightMyRequestResponse>, count: number): Promise<Answer[]> {
  let done = 0
  return Promise.all(Array.from({ length: count }, async (_, i) => {
    const res = await send(i)
    return { res, order: done++ }
  }))
}

/** What a 503 must carry: the OAuth2 error, a Retry-After, and no caching. */
function busyShape (res: LightMyRequestResponse) {
  return {
    status: res.statusCode,
    error: res.json().error,
    retryAfter: /^[1-9][0-9]*$/.test(String(res.headers['retry-after'])),
    cacheControl: res.headers['cache-control']
  }
}
const BUSY = { status: 503, error: 'temporarily_unavailable', retryAfter: true, cacheControl: 'no-store' }

/**
 * Counts argon2 verifications from now on; the first one holds its slot (the only one, in these
 * tests) until `release()` is called. `holdingSlot` resolves once it does.
 */
function holdFirstVerification (t: Test): { hashes: () => number, holdingSlot: Promise<void>, release: () => void } {
  const verify = argon2.verify
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  let hashes = 0
  let holding!: () => void
  const holdingSlot = new Promise<void>((resolve) => { holding = resolve })
  t.capture(argon2, 'verify', async (...args: Parameters<typeof verify>) => {
    if (++hashes === 1) {
      holding()
      await held
    }
    return await verify(...args)
  })
  return { hashes: () => hashes, holdingSlot, release }
}

t.test('past maxConcurrent + maxQueue, /token answers 503 at once while the pool works', async (t) => {
  const user: UserRecord = { username: 'slow', passwordHash: await hashPassword('slow-password', SLOW), scopes: [] }
  const app = await buildApp(t, {
    plugin: {
      rateLimit: false,
      loginThrottle: false,
      password: { ...SLOW, maxConcurrent: 1, maxQueue: 2, maxWait: NO_TIMEOUT },
      findUser: (username) => username === 'slow' ? user : null
    }
  })
  const answers = await flood(() => tokenRequest(app, { grant_type: 'password', username: 'slow', password: 'slow-password' }), 10)
  const busy = answers.filter((a) => a.res.statusCode === 503)
  const served = answers.filter((a) => a.res.statusCode !== 503)
  t.equal(served.length, 3, 'one running and two waiting were served')
  t.same(served.map((a) => a.res.statusCode), [200, 200, 200])
  t.equal(busy.length, 7)
  t.same(busy.map((a) => busyShape(a.res)), busy.map(() => BUSY), '503 temporarily_unavailable with Retry-After')
  t.ok(busy.every((a) => served.every((s) => a.order < s.order)), 'every 503 came back before the first login finished')
})

t.test('a flood of logins for unknown users: only maxConcurrent + maxQueue of them ever reach argon2', async (t) => {
  // Unknown users verify a dummy hash of the configured (slow) parameters: a flood of made-up
  // usernames costs the server exactly what a flood of real ones would, and no more.
  const app = await buildApp(t, {
    plugin: {
      rateLimit: false,
      loginThrottle: false,
      password: { ...SLOW, maxConcurrent: 2, maxQueue: 1, maxWait: NO_TIMEOUT },
      findUser: () => null
    }
  })
  const answers = await flood((i) => tokenRequest(app, { grant_type: 'password', username: `ghost${i}`, password: 'guess' }), 100)
  const served = answers.filter((a) => a.res.statusCode !== 503)
  t.equal(served.length, 3, 'the rest never hashed')
  t.same(served.map((a) => a.res.json().error), ['invalid_grant', 'invalid_grant', 'invalid_grant'])
  const busy = answers.filter((a) => a.res.statusCode === 503)
  t.equal(busy.length, 97)
  t.same(busy.map((a) => busyShape(a.res)), busy.map(() => BUSY), '503 temporarily_unavailable with Retry-After')
  t.ok(busy.every((a) => served.every((s) => a.order < s.order)), 'no 503 waited for a hash')

  // The pool drains: once the flood is over, a login is served again.
  const after = await tokenRequest(app, { grant_type: 'password', username: 'ghost', password: 'guess' })
  t.equal(after.json().error, 'invalid_grant')
})

t.test('a login that waited maxWait for a slot gets 503 with Retry-After, and is never hashed', async (t) => {
  const user: UserRecord = { username: 'user', passwordHash: await hashPassword('right-password', SLOW), scopes: [] }
  const { hashes, holdingSlot, release } = holdFirstVerification(t)
  const app = await buildApp(t, {
    plugin: {
      rateLimit: false,
      loginThrottle: false,
      password: { ...SLOW, maxConcurrent: 1, maxQueue: 10, maxWait: 100 },
      findUser: (username) => username === 'user' ? user : null
    }
  })
  const login = { grant_type: 'password', username: 'user', password: 'right-password' }
  const first = tokenRequest(app, login)
  await holdingSlot
  const started = performance.now()
  const waited = await tokenRequest(app, login)
  t.ok(performance.now() - started >= 90, 'it waited for a slot first')
  t.same(busyShape(waited), BUSY, '503 temporarily_unavailable with Retry-After')
  t.equal(hashes(), 1, 'no hash ran for the login that waited too long')
  release()
  t.equal((await first).statusCode, 200, 'the login holding the slot goes through')
  t.equal((await tokenRequest(app, login)).statusCode, 200, 'and the next one finds the slot free')
  t.equal(hashes(), 2)
})

t.test('the wait and the queue are options, checked at registration', async (t) => {
  const resolved = resolveOptions({ secret: SECRET })
  t.equal(resolved.password.maxQueue, DEFAULTS.password.maxQueue, 'a queue bounded by memory, not a tiny count')
  t.equal(resolved.password.maxWait, DEFAULTS.password.maxWait)
  t.equal(resolveOptions({ secret: SECRET, password: { maxWait: 0 } }).password.maxWait, 0, 'no waiting at all is allowed')
  for (const maxWait of [-1, 1.5, 60_001, '100']) {
    t.throws(() => resolveOptions({ secret: SECRET, password: { maxWait: maxWait as number } }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message: /password\.maxWait/ })
  }
})

/** Resolves once `condition` holds, checking every few ms; fails the test past five seconds. */
async function until (condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + 5000
  while (!await condition()) {
    if (performance.now() > deadline) throw new Error('the condition never held')
    await sleep(5)
  }
}

/**
 * A hook pair recording, for every login answered 200, how many `close` listeners its connection
 * (or stream) had at the answer that it did not have when the request arrived.
 */
function listenersLeftAfterLogins (left: number[]) {
  return (app: FastifyInstance, channelOf: (request: FastifyRequest) => EventEmitter): void => {
    const arrived = new WeakMap<FastifyRequest, unknown[]>()
    app.addHook('onRequest', (request, _reply, done) => {
      arrived.set(request, channelOf(request).listeners('close'))
      done()
    })
    app.addHook('onResponse', (request, reply, done) => {
      const before = arrived.get(request) as unknown[]
      // A stream cancelled by its client is answered by no one: its onResponse runs within the
      // stream's own 'close', before the plugin's listener for that same event has run.
      if (reply.raw.headersSent && reply.statusCode === 200) left.push(channelOf(request).listeners('close').filter((listener) => !before.includes(listener)).length)
      done()
    })
  }
}

/** The plugin options of the hang-up tests: one hashing slot, five places in the queue, every lookup recorded. */
function oneSlotFivePlaces (user: UserRecord, lookups: string[]): LooseOptions {
  return {
    rateLimit: false,
    loginThrottle: false,
    password: { ...SLOW, maxConcurrent: 1, maxQueue: 5, maxWait: NO_TIMEOUT },
    findUser: (username) => {
      lookups.push(username)
      return username === 'user' ? user : null
    }
  }
}

/** Starts `app` on 127.0.0.1 and returns its port. */
async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

/** The connections the server has open. */
async function openConnections (app: FastifyInstance): Promise<number> {
  return await new Promise((resolve, reject) => {
    app.server.getConnections((error, count) => { if (error === null) resolve(count); else reject(error) })
  })
}

t.test('logins whose clients hang up while they wait for a slot are never hashed, and give their queue places back', async (t) => {
  const user: UserRecord = { username: 'user', passwordHash: await hashPassword('right-password', SLOW), scopes: [] }
  const { hashes, holdingSlot, release } = holdFirstVerification(t)
  const lookups: string[] = []
  const logs = captureLogs()
  const app = await buildApp(t, {
    server: { logger: { level: 'info', stream: logs.stream } },
    plugin: oneSlotFivePlaces(user, lookups)
  })
  const port = await listen(app)
  const body = form({ grant_type: 'password', username: 'user', password: 'right-password' })
  const login = async (): Promise<Response> => await fetch(`http://127.0.0.1:${port}/token`, { method: 'POST', headers: FORM, body })

  const first = login()
  await holdingSlot
  // Five logins over connections of their own, each given up once it waits in the queue, the
  // way a client that timed out (or a flood that never reads its answers) leaves them.
  const quitters = Array.from({ length: 5 }, () => net.connect(port, '127.0.0.1'))
  for (const socket of quitters) {
    socket.on('error', () => {})
    socket.write(`POST /token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  }
  await until(() => lookups.length === 6)
  await sleep(20)
  for (const socket of quitters) socket.destroy()
  await until(async () => await openConnections(app) === 1)

  // The queue (five places) was full of them: a login whose client waits is queued now, not refused.
  const stayer = login()
  await until(() => lookups.length === 7)
  release()
  t.equal((await first).status, 200, 'the login holding the slot goes through')
  const answer = await stayer
  t.equal(answer.status, 200, 'the login that waited is served next')
  t.ok(typeof (await answer.json() as { access_token?: unknown }).access_token === 'string')
  t.equal(hashes(), 2, 'the five given-up logins were never hashed')
  t.same(logs.entries().filter((entry) => (entry.level as number) >= 50), [], 'nothing logged as an error')
})

t.test('a login whose client hung up before its password is checked is not hashed, even with a slot free', async (t) => {
  const hashes = countArgon2Verifies(t)
  const user: UserRecord = { username: 'user', passwordHash: await cheapHash('right-password'), scopes: [] }
  // The user store answers the quitter's lookup only once the test says so: a slow store.
  let lookedUp!: () => void
  const lookingUp = new Promise<void>((resolve) => { lookedUp = resolve })
  let answer!: () => void
  const answered = new Promise<void>((resolve) => { answer = resolve })
  const app = await buildApp(t, {
    plugin: {
      rateLimit: false,
      loginThrottle: false,
      findUser: async (username) => {
        if (username === 'quitter') {
          lookedUp()
          await answered
        }
        return { ...user, username }
      }
    }
  })
  const port = await listen(app)
  const body = (username: string): string => form({ grant_type: 'password', username, password: 'right-password' })

  const quitter = net.connect(port, '127.0.0.1')
  quitter.on('error', () => {})
  quitter.write(`POST /token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${body('quitter').length}\r\n\r\n${body('quitter')}`)
  await lookingUp
  quitter.destroy()
  await until(async () => await openConnections(app) === 0)
  answer()
  const stayer = await fetch(`http://127.0.0.1:${port}/token`, { method: 'POST', headers: FORM, body: body('user') })
  t.equal(stayer.status, 200)
  t.equal(hashes(), 1, 'only the login whose client waited was hashed')
})

t.test('over HTTP/2, a login whose stream is cancelled while it waits is never hashed, and gives its place back', async (t) => {
  const user: UserRecord = { username: 'user', passwordHash: await hashPassword('right-password', SLOW), scopes: [] }
  const { hashes, holdingSlot, release } = holdFirstVerification(t)
  const lookups: string[] = []
  let closedStreams = 0
  const left: number[] = []
  const countLeftListeners = listenersLeftAfterLogins(left)
  const app = await buildApp(t, {
    server: { http2: true } as FastifyServerOptions,
    before: (app) => {
      // Counts the streams the server saw close, to know when the cancellations have arrived.
      app.addHook('onRequest', (request, _reply, done) => {
        (request.raw as unknown as { stream: ServerHttp2Stream }).stream.once('close', () => { closedStreams += 1 })
        done()
      })
      countLeftListeners(app, (request) => (request.raw as unknown as { stream: ServerHttp2Stream }).stream)
    },
    plugin: oneSlotFivePlaces(user, lookups)
  })
  const port = await listen(app)
  const session = http2.connect(`http://127.0.0.1:${port}`)
  t.teardown(() => { session.close() })
  const body = form({ grant_type: 'password', username: 'user', password: 'right-password' })
  const login = (): { stream: ClientHttp2Stream, status: Promise<number> } => {
    const stream = session.request({ ':method': 'POST', ':path': '/token', 'content-type': 'application/x-www-form-urlencoded' })
    stream.on('error', () => {})
    const status = new Promise<number>((resolve) => { stream.on('response', (headers) => { resolve(headers[':status'] as number) }) })
    stream.end(body)
    stream.resume()
    return { stream, status }
  }

  const first = login()
  await holdingSlot
  const quitters = Array.from({ length: 5 }, login)
  await until(() => lookups.length === 6)
  await sleep(20)
  for (const { stream } of quitters) stream.close(http2.constants.NGHTTP2_CANCEL)
  await until(() => closedStreams === 5)
  // The connection stays open: only the streams were given up.
  const stayer = login()
  await until(() => lookups.length === 7)
  release()
  t.equal(await first.status, 200)
  t.equal(await stayer.status, 200, 'the login that waited is served next')
  t.equal(hashes(), 2, 'the five cancelled logins were never hashed')
  // The status arrives before the server has run the second one's onResponse.
  await until(() => left.length === 2)
  t.same(left, [0, 0], 'no listener was left on the streams of the logins served')
})

t.test('logins over one keep-alive connection leave no listener behind on it', async (t) => {
  const left: number[] = []
  const app = await buildApp(t, {
    before: (app) => { listenersLeftAfterLogins(left)(app, (request) => request.raw.socket) },
    plugin: { rateLimit: false, loginThrottle: false }
  })
  const port = await listen(app)
  const body = form({ grant_type: 'password', username: 'user1', password: 'password1' })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  for (let i = 0; i < 12; i++) {
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/token', method: 'POST', agent, headers: { ...FORM, 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume()
        res.on('end', () => { resolve(res.statusCode) })
      })
      req.on('error', reject)
      req.end(body)
    })
    t.equal(status, 200)
  }
  t.equal(await openConnections(app), 1, 'one connection carried them all')
  t.same(left, Array.from({ length: 12 }, () => 0), 'none of them left a close listener on it')
})

t.test('logins pipelined on one connection share one listener, and none still queued is hashed once it closes', async (t) => {
  const user: UserRecord = { username: 'user', passwordHash: await hashPassword('right-password', SLOW), scopes: [] }
  const { hashes, holdingSlot, release } = holdFirstVerification(t)
  const lookups: string[] = []
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const app = await buildApp(t, { plugin: { ...oneSlotFivePlaces(user, lookups), password: { ...SLOW, maxConcurrent: 1, maxQueue: 20, maxWait: NO_TIMEOUT } } })
  const port = await listen(app)

  // Twelve logins in one write: Node hands them to the app at once, each waiting for the slot.
  const body = form({ grant_type: 'password', username: 'user', password: 'right-password' })
  const client = net.connect(port, '127.0.0.1')
  client.on('error', () => {})
  client.write(`POST /token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`.repeat(12))
  await holdingSlot
  await until(() => lookups.length === 12)
  await sleep(20)
  t.same(warnings.map((warning) => warning.name), [], 'no MaxListenersExceededWarning: one close listener serves them all')
  client.destroy()
  await until(async () => await openConnections(app) === 0)
  release()
  // A login from another connection queues behind whatever is still queued (first in, first out):
  // by its answer, any of the eleven left in the queue would have been hashed.
  const after = await fetch(`http://127.0.0.1:${port}/token`, { method: 'POST', headers: FORM, body })
  t.equal(after.status, 200)
  t.equal(hashes(), 2, 'only the login that had started, and the one after, were hashed')
})
