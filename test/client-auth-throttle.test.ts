import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { performance } from 'node:perf_hooks'
import { hashPassword, type AuthEvent } from '../lib/index.js'
import { buildApp, cheapHash, countArgon2Verifies, FORM, form } from './helper.js'

/*
 * Client authentication under attack (issue 13): a wrong client_secret is throttled per
 * (client_id, source) like a wrong password, reserved before argon2 runs; and an unknown
 * client_id costs the same argon2 verification as a known one with a wrong secret, so its
 * answer time does not tell which ids exist (ASVS 6.3.8).
 */

const GOOD = { grant_type: 'password', username: 'user1', password: 'password1' }

function post (app: { inject: (o: object) => Promise<LightMyRequestResponse> }, fields: Record<string, string>, remoteAddress = '203.0.113.9'): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/token', remoteAddress, headers: FORM, payload: form({ ...GOOD, ...fields }) })
}

t.test('wrong secrets: five per (client_id, source), then 429 with Retry-After, an event, and no argon2', async (t) => {
  const events: AuthEvent[] = []
  const verifies = countArgon2Verifies(t)
  const app = await buildApp(t, { plugin: { rateLimit: false, clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }], onAuthEvent: (e) => events.push(e) } })
  const start = verifies()
  for (let i = 0; i < 5; i++) t.equal((await post(app, { client_id: 'web', client_secret: `guess-${i}` })).statusCode, 401)
  t.equal(verifies() - start, 5)
  const refused = await post(app, { client_id: 'web', client_secret: 'web-secret' })
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().error, 'too_many_requests')
  t.match(refused.headers['retry-after'], /^[1-9][0-9]*$/)
  t.equal(verifies() - start, 5, 'the refusal ran no argon2 verification')
  t.match(events.at(-1), { type: 'client.throttled', clientId: 'web', reason: 'per_client_ip', ip: '203.0.113.9' })

  t.equal((await post(app, { client_id: 'web', client_secret: 'web-secret' }, '198.51.100.3')).statusCode, 200, 'another source is not refused')
})

t.test('a success clears its own (client_id, source) count', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false, clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }] } })
  for (let i = 0; i < 4; i++) await post(app, { client_id: 'web', client_secret: 'nope' })
  t.equal((await post(app, { client_id: 'web', client_secret: 'web-secret' })).statusCode, 200)
  for (let i = 0; i < 5; i++) t.equal((await post(app, { client_id: 'web', client_secret: 'nope' })).statusCode, 401)
  t.equal((await post(app, { client_id: 'web', client_secret: 'nope' })).statusCode, 429)
})

t.test('unknown client_ids are throttled too, each by its own count', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false, clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }] } })
  for (let i = 0; i < 5; i++) t.equal((await post(app, { client_id: 'ghost', client_secret: 's' })).statusCode, 401)
  t.equal((await post(app, { client_id: 'ghost', client_secret: 's' })).statusCode, 429)
  t.equal((await post(app, { client_id: 'web', client_secret: 'web-secret' })).statusCode, 200)
})

t.test('loginThrottle: false leaves client authentication unthrottled', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }] } })
  for (let i = 0; i < 7; i++) t.equal((await post(app, { client_id: 'web', client_secret: 'nope' })).statusCode, 401)
  t.equal((await post(app, { client_id: 'web', client_secret: 'web-secret' })).statusCode, 200)
})

t.test('a 503 from a full hashing pool takes the client count back', async (t) => {
  const app = await buildApp(t, {
    plugin: { rateLimit: false, loginThrottle: { perUsernameAndIp: { max: 2 } }, password: { memoryCost: 256, timeCost: 2, parallelism: 1, maxConcurrent: 1, maxQueue: 0 }, clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }] }
  })
  const answers = await Promise.all([post(app, { client_id: 'web', client_secret: 'nope' }), post(app, { client_id: 'web', client_secret: 'nope' })])
  t.same(answers.map((a) => a.statusCode).sort(), [401, 503], 'one verified, one found the pool full')
  t.equal((await post(app, { client_id: 'web', client_secret: 'web-secret' })).statusCode, 200, 'the 503 did not count: a third attempt is allowed under a limit of 2')
})

t.test('an unknown client_id costs one argon2 verification, as a known one with a wrong secret does', async (t) => {
  const verifies = countArgon2Verifies(t)
  const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }, { id: 'mobile' }] } })
  for (const [id, secret] of [['web', 'wrong'], ['ghost', 'wrong'], ['mobile', 'a-secret-it-has-not']]) {
    const before = verifies()
    t.equal((await post(app, { client_id: id as string, client_secret: secret as string, password: 'not-checked' })).statusCode, 401)
    t.equal(verifies() - before, 1, `${id}: one verification`)
  }
})

t.test('with real argon2 parameters, an unknown client_id takes as long as a wrong secret', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, password: { maxConcurrent: 1 }, clients: [{ id: 'web', secretHash: await hashPassword('web-secret') }] } })
  async function median (clientId: string): Promise<number> {
    const times: number[] = []
    for (let i = 0; i < 5; i++) {
      const start = performance.now()
      await post(app, { client_id: clientId, client_secret: 'wrong' })
      times.push(performance.now() - start)
    }
    return times.sort((a, b) => a - b)[2] as number
  }
  await median('web')
  const known = await median('web')
  const unknown = await median('ghost')
  t.ok(unknown > known / 2 && unknown < known * 2, `unknown ${unknown.toFixed(1)} ms vs known ${known.toFixed(1)} ms`)
})
