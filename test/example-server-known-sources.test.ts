import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildServer } from '../examples/server.js'
import { FORM, form } from './helper.js'

/*
 * Known sources through the example server (issue 13, acceptance 1), with its real argon2
 * parameters: the per-username backoff never refuses the address a user logged in from; only
 * that address's own failures can. The mechanics are in known-sources.test.ts.
 */

// Real argon2 (19 MiB, t=2) for some twenty verifications: slower than tap's 30 s default allows on a busy machine.
t.setTimeout(120_000)

const RIGHT = { grant_type: 'password', username: 'user1', password: 'password1' }
const WRONG = { ...RIGHT, password: 'wrong-password' }

function post (app: Awaited<ReturnType<typeof buildServer>>, fields: Record<string, string>, remoteAddress: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/token', remoteAddress, headers: FORM, payload: form(fields) })
}

t.test('the example server: the victim\'s known address keeps working while the username is under attack', async (t) => {
  const app = await buildServer({ LOG_LEVEL: 'silent', JWT_SECRET: 'example-test-secret-2f9c4e1a7b3d8f0e6c5a' })
  t.teardown(() => app.close())
  const K = '198.51.100.10'
  t.equal((await post(app, RIGHT, K)).statusCode, 200, 'user1 logs in from K')

  // Wrong passwords from many other addresses: ten are checked, then the backoff refuses.
  const answers: number[] = []
  for (let i = 1; i <= 12; i++) answers.push((await post(app, WRONG, `203.0.113.${i}`)).statusCode)
  t.same(answers, [...Array(10).fill(400), 429, 429], 'user1 is in backoff')

  t.equal((await post(app, RIGHT, K)).statusCode, 200, 'the right password from K: 200')
  const elsewhere = await post(app, RIGHT, '192.0.2.77')
  t.equal(elsewhere.statusCode, 429, 'the right password from a new address: 429')
  t.match(elsewhere.headers['retry-after'], /^[1-9][0-9]*$/)

  // Wrong passwords from K are checked, and count against K alone.
  for (let i = 0; i < 5; i++) t.equal((await post(app, WRONG, K)).statusCode, 400, `failure ${i + 1} from K: 400`)
  const blocked = await post(app, RIGHT, K)
  t.equal(blocked.statusCode, 429, 'K\'s own failures can refuse K')
  t.equal(blocked.json().error, 'too_many_requests')
})
