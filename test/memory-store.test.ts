import t from 'tap'
import { createMemoryStore, type ThrottleRule } from '../lib/index.js'
import { buildApp, tokenRequest } from './helper.js'

/*
 * The default store, used directly. Time is the `now` argument of `reserve`, so no clock is
 * faked and nothing sleeps.
 */

const WINDOW: ThrottleRule = { limit: 3, windowMs: 1000 }
const BACKOFF: ThrottleRule = { limit: 3, windowMs: 10_000, backoff: { maxMs: 5000 } }
const T0 = 1_700_000_000_000

t.test('fixed window: counts up to the limit, then refuses with the time left', async (t) => {
  const store = createMemoryStore()
  for (let i = 0; i < 3; i++) t.same(await store.reserve('k', WINDOW, T0 + i * 100), { allowed: true, retryAfterMs: 0 })
  t.same(await store.reserve('k', WINDOW, T0 + 300), { allowed: false, retryAfterMs: 700 }, 'the window runs from the first attempt')
  t.same(await store.reserve('k', WINDOW, T0 + 999), { allowed: false, retryAfterMs: 1 })
  t.same(await store.reserve('other', WINDOW, T0 + 999), { allowed: true, retryAfterMs: 0 }, 'keys are counted apart')
})

t.test('fixed window: refused attempts do not count, and the window expires', async (t) => {
  const store = createMemoryStore()
  for (let i = 0; i < 3; i++) await store.reserve('k', WINDOW, T0)
  for (let i = 0; i < 5; i++) t.equal((await store.reserve('k', WINDOW, T0 + 500)).allowed, false)
  // A new window starts at the first attempt after the old one ended.
  for (let i = 0; i < 3; i++) t.same(await store.reserve('k', WINDOW, T0 + 1000), { allowed: true, retryAfterMs: 0 })
  t.same(await store.reserve('k', WINDOW, T0 + 1500), { allowed: false, retryAfterMs: 500 })
})

t.test('backoff: waits of 1 s, 2 s, 4 s … from the limit-th attempt, capped at maxMs', async (t) => {
  const store = createMemoryStore()
  let now = T0
  t.same(await store.reserve('u', BACKOFF, now), { allowed: true, retryAfterMs: 0 })
  t.same(await store.reserve('u', BACKOFF, now), { allowed: true, retryAfterMs: 0 }, 'below the limit: no wait')
  const waits: number[] = []
  for (let i = 0; i < 6; i++) {
    t.same(await store.reserve('u', BACKOFF, now), { allowed: true, retryAfterMs: 0 })
    const refused = await store.reserve('u', BACKOFF, now)
    t.equal(refused.allowed, false)
    waits.push(refused.retryAfterMs)
    // An attempt during the wait is refused and does not extend it.
    t.same(await store.reserve('u', BACKOFF, now + refused.retryAfterMs - 1), { allowed: false, retryAfterMs: 1 })
    now += refused.retryAfterMs
  }
  t.same(waits, [1000, 2000, 4000, 5000, 5000, 5000])
})

t.test('backoff: the exponent is bounded, so a huge count still gives the cap', async (t) => {
  const store = createMemoryStore()
  const rule: ThrottleRule = { limit: 1, windowMs: 1000, backoff: { maxMs: 15 * 60_000 } }
  let now = T0
  let last = 0
  for (let i = 0; i < 40; i++) {
    t.equal((await store.reserve('u', rule, now)).allowed, true)
    last = (await store.reserve('u', rule, now)).retryAfterMs
    now += last
  }
  t.equal(last, 15 * 60_000)
})

t.test('backoff: the count is forgotten windowMs after the last wait ends', async (t) => {
  const store = createMemoryStore()
  for (let i = 0; i < 3; i++) await store.reserve('u', BACKOFF, T0)
  // The 3rd attempt started a 1 s wait; the count lives 10 s past its end.
  t.same(await store.reserve('u', BACKOFF, T0 + 1000 + 9999), { allowed: true, retryAfterMs: 0 })
  t.equal((await store.reserve('u', BACKOFF, T0 + 1000 + 9999)).retryAfterMs, 2000, 'still counting: the 4th started a 2 s wait')
  const later = T0 + 1000 + 9999 + 2000 + 10_000
  for (let i = 0; i < 2; i++) t.same(await store.reserve('u', BACKOFF, later), { allowed: true, retryAfterMs: 0 })
  t.same(await store.reserve('u', BACKOFF, later), { allowed: true, retryAfterMs: 0 })
  t.equal((await store.reserve('u', BACKOFF, later)).retryAfterMs, 1000, 'counting again from 1')
})

t.test('release takes back one attempt, never below zero', async (t) => {
  const store = createMemoryStore()
  const rule: ThrottleRule = { limit: 2, windowMs: 1000 }
  await store.reserve('k', rule, T0)
  await store.reserve('k', rule, T0)
  t.equal((await store.reserve('k', rule, T0)).allowed, false)
  await store.release('k')
  t.equal((await store.reserve('k', rule, T0)).allowed, true, 'the released place is free again')
  t.equal((await store.reserve('k', rule, T0)).allowed, false)

  // Releasing more than was reserved must not leave credit for extra attempts.
  for (let i = 0; i < 5; i++) await store.release('k')
  t.equal((await store.reserve('k', rule, T0)).allowed, true)
  t.equal((await store.reserve('k', rule, T0)).allowed, true)
  t.equal((await store.reserve('k', rule, T0)).allowed, false)

  await store.release('never-seen')
  t.same(await store.reserve('never-seen', rule, T0), { allowed: true, retryAfterMs: 0 }, 'releasing an unknown key creates nothing')
})

t.test('reset forgets a key', async (t) => {
  const store = createMemoryStore()
  for (let i = 0; i < 3; i++) await store.reserve('k', WINDOW, T0)
  for (let i = 0; i < 3; i++) await store.reserve('b', BACKOFF, T0)
  await store.reset('k')
  await store.reset('b')
  t.same(await store.reserve('k', WINDOW, T0), { allowed: true, retryAfterMs: 0 })
  t.same(await store.reserve('b', BACKOFF, T0), { allowed: true, retryAfterMs: 0 }, 'the wait is gone too')
  t.same(await store.reserve('b', BACKOFF, T0), { allowed: true, retryAfterMs: 0 })
  await store.reset('never-seen')
})

t.test('maxEntries bounds the number of keys: the stalest are dropped', async (t) => {
  const max = 50
  const store = createMemoryStore({ maxEntries: max })
  const rule: ThrottleRule = { limit: 1, windowMs: 60_000 }
  for (let i = 0; i < max + 10; i++) t.equal((await store.reserve(`k${i}`, rule, T0)).allowed, true)
  // A refused reserve writes nothing, so checking the newest first does not disturb them.
  for (let i = 10; i < max + 10; i++) {
    if ((await store.reserve(`k${i}`, rule, T0)).allowed) t.fail(`k${i} was dropped`)
  }
  for (let i = 0; i < 10; i++) {
    if (!(await store.reserve(`k${i}`, rule, T0)).allowed) t.fail(`k${i} was kept`)
  }
  t.pass('exactly the 10 oldest keys were dropped')
})

t.test('maxEntries: a key written again is fresh, not stale', async (t) => {
  const store = createMemoryStore({ maxEntries: 3 })
  const rule: ThrottleRule = { limit: 2, windowMs: 60_000 }
  for (const key of ['a', 'b', 'c']) await store.reserve(key, rule, T0)
  await store.reserve('a', rule, T0) // a is now the newest
  await store.reserve('d', rule, T0) // drops b
  t.equal((await store.reserve('a', rule, T0)).allowed, false, 'a kept its count of 2')
  t.equal((await store.reserve('c', rule, T0)).allowed, true, 'c kept (count 1 → 2)')
  t.equal((await store.reserve('c', rule, T0)).allowed, false)
  // b was dropped: it starts over with two attempts.
  t.equal((await store.reserve('b', rule, T0)).allowed, true)
  t.equal((await store.reserve('b', rule, T0)).allowed, true)
})

t.test('memory stays bounded under a flood of distinct keys', async (t) => {
  const store = createMemoryStore({ maxEntries: 1000 })
  const rule: ThrottleRule = { limit: 1, windowMs: 3_600_000 }
  for (let i = 0; i < 100_000; i++) await store.reserve(`flood-${i}`, rule, T0)
  // Only the last 1000 are remembered (refusals write nothing, so they are checked first).
  t.equal((await store.reserve('flood-99999', rule, T0)).allowed, false)
  t.equal((await store.reserve('flood-99000', rule, T0)).allowed, false)
  t.equal((await store.reserve('flood-98999', rule, T0)).allowed, true)
})

t.test('the amortized sweep removes expired entries, so they do not push live ones out', async (t) => {
  const store = createMemoryStore({ maxEntries: 5000 })
  const live: ThrottleRule = { limit: 1, windowMs: 3_600_000 }
  const short: ThrottleRule = { limit: 1, windowMs: 10 }
  // The oldest live keys, then short-lived ones written after them.
  for (let i = 0; i < 1000; i++) await store.reserve(`live-a${i}`, live, T0)
  for (let i = 0; i < 3000; i++) await store.reserve(`short${i}`, short, T0)
  // Once the short ones have expired, 4000 more live keys: 8000 written in all, 5000 held at most.
  for (let i = 0; i < 4000; i++) await store.reserve(`live-b${i}`, live, T0 + 100)
  // Had the expired keys stayed, the limit would have dropped the oldest: the live-a ones.
  let kept = 0
  for (let i = 0; i < 1000; i++) {
    if (!(await store.reserve(`live-a${i}`, live, T0 + 200)).allowed) kept += 1
  }
  t.equal(kept, 1000, 'every old live key is still counted')
})

t.test('close clears everything', async (t) => {
  const store = createMemoryStore()
  for (let i = 0; i < 3; i++) await store.reserve('k', WINDOW, T0)
  t.equal((await store.reserve('k', WINDOW, T0)).allowed, false)
  await store.close?.()
  t.same(await store.reserve('k', WINDOW, T0), { allowed: true, retryAfterMs: 0 })
})

t.test('two reservations at once on one key both see the other', async (t) => {
  const store = createMemoryStore()
  const rule: ThrottleRule = { limit: 5, windowMs: 60_000 }
  const results = await Promise.all(Array.from({ length: 50 }, () => store.reserve('k', rule, T0)))
  t.equal(results.filter((r) => r.allowed).length, 5)
})

t.test('a store the host passes does the counting, and the plugin does not close it', async (t) => {
  const store = createMemoryStore()
  let closed = false
  const hostStore = { ...store, close: async () => { closed = true } }
  const app = await buildApp(t, { plugin: { store: hostStore, rateLimit: false } })
  for (let i = 0; i < 5; i++) await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'nope' })
  // The plugin's count lives in the host's store: another app sharing it sees it too.
  const other = await buildApp(t, { plugin: { store: hostStore, rateLimit: false } })
  t.equal((await tokenRequest(other, { grant_type: 'password', username: 'user1', password: 'password1' })).statusCode, 429)
  await app.close()
  await other.close()
  t.equal(closed, false, 'a store the host passed stays open')
})

t.test('a key written on every request stays, however many others come and go', async (t) => {
  const store = createMemoryStore({ maxEntries: 10 })
  const hot: ThrottleRule = { limit: 1_000_000, windowMs: 60_000 }
  const cold: ThrottleRule = { limit: 1, windowMs: 60_000 }
  for (let i = 0; i < 1000; i++) {
    await store.reserve('hot', hot, T0)
    await store.reserve(`cold${i}`, cold, T0)
  }
  // Had 'hot' been dropped at any point, its count would have started over below 1000.
  const rule: ThrottleRule = { limit: 1000, windowMs: 60_000 }
  t.equal((await store.reserve('hot', rule, T0)).allowed, false, 'all 1000 attempts still counted')
  t.equal((await store.reserve('cold0', cold, T0)).allowed, true, 'an old cold key was dropped')
})
