import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp, tokenRequest } from './helper.js'
import { hashPassword, type UserRecord } from '../lib/index.js'

/*
 * Bounded password hashing under a login flood: at most `maxConcurrent` verifications run and
 * `maxQueue` wait; every login past that is answered 503 at once, without hashing, so neither the
 * memory held by argon2 (its memory cost × the logins in the pool) nor the wait of a login can
 * grow with the size of the flood.
 *
 * The hashes here are deliberately slow (argon2id, 19 MiB, 10 passes: a good fraction of a second
 * for one verify), so that "at once" is plain: the 503s all come back while the first
 * verification is still running.
 */

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

t.test('past maxConcurrent + maxQueue, /token answers 503 at once while the pool works', async (t) => {
  const user: UserRecord = { username: 'slow', passwordHash: await hashPassword('slow-password', SLOW), scopes: [] }
  const app = await buildApp(t, {
    plugin: {
      rateLimit: false,
      loginThrottle: false,
      password: { ...SLOW, maxConcurrent: 1, maxQueue: 2 },
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
      password: { ...SLOW, maxConcurrent: 2, maxQueue: 1 },
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
