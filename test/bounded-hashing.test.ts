import t from 'tap'
import argon2 from 'argon2'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp, SECRET, tokenRequest } from './helper.js'
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
  // The first verification holds the only slot until the test lets it go; every call is counted.
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
  t.equal(hashes, 1, 'no hash ran for the login that waited too long')
  release()
  t.equal((await first).statusCode, 200, 'the login holding the slot goes through')
  t.equal((await tokenRequest(app, login)).statusCode, 200, 'and the next one finds the slot free')
  t.equal(hashes, 2)
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
