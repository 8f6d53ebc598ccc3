import t from 'tap'
import { Writable } from 'node:stream'
import type { FastifyError } from 'fastify'
import type { AuthEvent } from '../lib/index.js'
import { LOG_LINES_PER_SECOND } from '../lib/logging/events.js'
import { createLogBudget } from '../lib/logging/log-budget.js'
import { bearer, buildApp, forge, FORM, tokenRequest, validClaims, VALID_HEADER } from './helper.js'

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

/** A new client address for each `i`. */
const address = (i: number): string => `10.0.${i >> 8}.${i & 255}`

t.test('a flood of forged tokens: at most LOG_LINES_PER_SECOND lines a second, the rest counted', async (t) => {
  const { app, lines, events, advance } = await loggingApp(t)
  const total = LOG_LINES_PER_SECOND + 50
  for (let i = 0; i < total; i++) {
    const res = await app.inject({ url: '/protected', remoteAddress: address(i), headers: bearer(forge(VALID_HEADER, validClaims({ jti: `j${i}` }), 'another-secret-of-at-least-32-bytes!!')) })
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

t.test('a flood of cheap events does not hide the lines of another attack', async (t) => {
  const forged = (i: number): string => forge(VALID_HEADER, validClaims({ jti: `f${i}` }), 'another-secret-of-at-least-32-bytes!!')
  const expired = forge(VALID_HEADER, validClaims({ exp: Math.floor(Date.now() / 1000) - 3600 }))

  t.test('one address gets a tenth of a kind\'s lines: another address\'s line of that kind is still written', async (t) => {
    const { app, lines } = await loggingApp(t)
    for (let i = 0; i < LOG_LINES_PER_SECOND + 50; i++) await app.inject({ url: '/protected', remoteAddress: '192.0.2.66', headers: bearer(forged(i)) })
    const flooder = lines.filter((line) => (line.authEvent as AuthEvent | undefined)?.ip === '192.0.2.66')
    t.equal(flooder.length, LOG_LINES_PER_SECOND / 10)
    await app.inject({ url: '/protected', remoteAddress: '198.51.100.7', headers: bearer(forged(-1)) })
    const other = lines.at(-1) as { authEvent: AuthEvent, skippedLines: number }
    t.equal(other.authEvent.ip, '198.51.100.7', 'written')
    t.equal(other.skippedLines, LOG_LINES_PER_SECOND + 50 - LOG_LINES_PER_SECOND / 10, 'with the count of the flooder\'s lines left out')
    const said = lines.filter((line) => 'authEventType' in line)
    t.equal(said.length, 1, 'that lines are being left out is said once')
    t.match(said[0]?.msg, /over their log budget \(100 lines a second, 10 from one source\)/)
  })

  t.test('each reason of a type has its own budget', async (t) => {
    const { app, lines } = await loggingApp(t)
    for (let i = 0; i < LOG_LINES_PER_SECOND + 10; i++) await app.inject({ url: '/protected', remoteAddress: address(i), headers: bearer(forged(i)) })
    const overflow = lines.filter((line) => line.authEventType === 'token.rejected')
    t.equal(overflow.length, 1)
    t.equal(overflow[0]?.authEventReason, 'invalid')
    t.match(overflow[0]?.msg, /token\.rejected \(invalid\)/)
    await app.inject({ url: '/protected', remoteAddress: address(0), headers: bearer(expired) })
    t.same((lines.at(-1) as { authEvent: AuthEvent }).authEvent, { type: 'token.rejected', reason: 'expired', ip: address(0), requestId: (lines.at(-1) as { authEvent: AuthEvent }).authEvent.requestId },
      'an expired token is logged while forged ones are over budget')
    // A login asking for a scope nobody is offered costs no hash; a wrong password's line survives a flood of them.
    const scoped = await loggingApp(t, { scopes: { profile: 'Profile' }, rateLimit: false, loginThrottle: false })
    for (let i = 0; i < LOG_LINES_PER_SECOND + 10; i++) {
      await scoped.app.inject({ method: 'POST', url: '/token', remoteAddress: address(i), headers: FORM, payload: `grant_type=password&username=u${i}&password=x&scope=nosuchscope` })
    }
    t.equal(scoped.lines.filter((line) => line.authEventType === 'login.failure').length, 1, 'the flood fills its kind')
    await scoped.app.inject({ method: 'POST', url: '/token', remoteAddress: '203.0.113.9', headers: FORM, payload: 'grant_type=password&username=victim&password=guess' })
    t.match(scoped.lines.at(-1), { authEvent: { type: 'login.failure', reason: 'bad_credentials', username: 'victim' } })
  })
})

t.test('without a listener, an overflow is still said once; a type without reasons names none', async (t) => {
  const { app, lines } = await loggingApp(t, { onAuthEvent: undefined, rateLimit: false, loginThrottle: false })
  for (let i = 0; i < LOG_LINES_PER_SECOND + 5; i++) {
    const res = await app.inject({ method: 'POST', url: '/token', remoteAddress: address(i), headers: FORM, payload: 'grant_type=password&username=user1&password=password1' })
    if (res.statusCode !== 200) t.fail(`login ${i} got ${res.statusCode}`)
  }
  const overflow = lines.filter((line) => line.authEventType === 'login.success')
  t.equal(overflow.length, 1)
  t.notOk('authEventReason' in (overflow[0] as object))
  t.match(overflow[0]?.msg, /auth events login\.success over their log budget/)
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
  const take = createLogBudget(2, 2)
  t.same([take('a', 's1', 0), take('a', 's2', 10), take('a', 's3', 20), take('a', 's4', 30)].map((d) => [d.log, d.skipped, d.overflowing]),
    [[true, 0, false], [true, 0, false], [false, 1, true], [false, 2, false]])
  t.same(take('b', 's1', 40), { log: true, skipped: 0, overflowing: false }, 'another kind, another budget')
  t.same(take('a', 's1', 1000), { log: true, skipped: 2, overflowing: false }, 'a new second')

  const bySource = createLogBudget(4, 1)
  t.same([bySource('a', 's1', 0), bySource('a', 's1', 1), bySource('a', 's2', 2)].map((d) => [d.log, d.skipped, d.overflowing]),
    [[true, 0, false], [false, 1, true], [true, 1, false]], 'one line a source; a source over its share is said once, as a kind over its own')
  t.same(bySource('a', 's1', 3), { log: false, skipped: 1, overflowing: false }, 'once a second')
  t.same(bySource('a', 's1', 1000), { log: true, skipped: 1, overflowing: false }, 'a new second, a new share, with the count')
  t.same(bySource('a', 's1', 1001), { log: false, skipped: 1, overflowing: true }, 'and said again in the new second')
  t.equal(createLogBudget(5)('a', 's', 0).log, true, 'a share of at least one line')
})
