import t from 'tap'
import { Writable } from 'node:stream'
import type { FastifyError } from 'fastify'
import type { AuthEvent } from '../lib/index.js'
import { LOG_LINES_PER_SECOND } from '../lib/logging/events.js'
import { createLogBudget } from '../lib/logging/log-budget.js'
import { bearer, buildApp, forge, tokenRequest, validClaims, VALID_HEADER } from './helper.js'

/*
 * What a flood of bad requests costs the server beyond the answer itself: a client can cause a
 * security event per request (a forged token, a throttled login), so their log lines are capped
 * per second and per type, and the errors behind those answers carry no stack trace.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** An app that logs at warn into `lines`, with `Date.now` held still until the test moves it. */
async function loggingApp (tt: Tap, plugin: Record<string, unknown> = {}) {
  let now = Date.now()
  tt.capture(Date, 'now', () => now)
  const lines: Array<Record<string, unknown>> = []
  const events: AuthEvent[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)))
      callback()
    }
  })
  const app = await buildApp(tt, {
    server: { logger: { level: 'warn', stream } },
    plugin: { onAuthEvent: (event) => { events.push(event) }, ...plugin }
  })
  return { app, lines, events, advance: (ms: number) => { now += ms } }
}

t.test('a flood of forged tokens: at most LOG_LINES_PER_SECOND lines a second, the rest counted', async (t) => {
  const { app, lines, events, advance } = await loggingApp(t)
  const total = LOG_LINES_PER_SECOND + 50
  for (let i = 0; i < total; i++) {
    const res = await app.inject({ url: '/protected', headers: bearer(forge(VALID_HEADER, validClaims({ jti: `j${i}` }), 'another-secret-of-at-least-32-bytes!!')) })
    if (res.statusCode !== 401) t.fail(`request ${i} got ${res.statusCode}`)
  }
  t.equal(events.length, total, 'onAuthEvent hears every event')
  const rejected = lines.filter((line) => (line.authEvent as AuthEvent | undefined)?.type === 'token.rejected')
  t.equal(rejected.length, LOG_LINES_PER_SECOND)
  const overflow = lines.filter((line) => line.authEventType === 'token.rejected')
  t.equal(overflow.length, 1, 'one line says that lines are being left out')

  advance(1000)
  await app.inject({ url: '/protected', headers: bearer('not.a.token') })
  const next = lines.at(-1) as { authEvent: AuthEvent, skippedLines: number }
  t.equal(next.authEvent.type, 'token.rejected')
  t.equal(next.skippedLines, 50, 'the next line says how many were left out')
  await app.inject({ url: '/protected', headers: bearer('not.a.token') })
  t.notOk('skippedLines' in (lines.at(-1) as object), 'and only that one')
})

t.test('each type of event has its own budget', async (t) => {
  const { app, lines } = await loggingApp(t, { rateLimit: { max: 1, timeWindow: 60_000 }, loginThrottle: false })
  for (let i = 0; i < LOG_LINES_PER_SECOND + 1; i++) await app.inject({ url: '/protected', headers: bearer('not.a.token') })
  await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  const throttled = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(throttled.statusCode, 429)
  t.equal((lines.at(-1) as { authEvent: AuthEvent }).authEvent.type, 'login.throttled', 'logged although token.rejected is over budget')
})

t.test('the errors behind 4xx answers carry no stack trace', async (t) => {
  let seen: FastifyError | undefined
  const app = await buildApp(t, {
    before: (app) => {
      app.setErrorHandler((error: FastifyError, _request, reply) => {
        seen = error
        return reply.code(error.statusCode ?? 500).send({ code: error.code })
      })
    }
  })
  const res = await app.inject({ url: '/protected', headers: bearer('not.a.token') })
  t.same(res.json(), { code: 'FST_TOKEN_AUTH_INVALID_TOKEN' })
  t.equal(seen?.stack, undefined)
  t.ok(seen instanceof Error, 'still an Error')
})

t.test('createLogBudget', async (t) => {
  const take = createLogBudget(2)
  t.same([take('a', 0), take('a', 10), take('a', 20), take('a', 30)].map((d) => [d.log, d.skipped, d.overflowing]),
    [[true, 0, false], [true, 0, false], [false, 1, true], [false, 2, false]])
  t.same(take('b', 40), { log: true, skipped: 0, overflowing: false }, 'another kind, another budget')
  t.same(take('a', 1000), { log: true, skipped: 2, overflowing: false }, 'a new second')
})
