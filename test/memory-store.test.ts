import t from 'tap'
import { createMemoryStore, type ThrottleRule } from '../lib/index.js'
import { buildApp, tokenRequest } from './helper.js'
import { MAX_SOURCES_PER_ACCOUNT } from '../lib/stores/types.js'

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

t.test('maxEntries: a table full of live entries refuses a new key, and keeps every one it holds', async (t) => {
  const max = 50
  const store = createMemoryStore({ maxEntries: max })
  const rule: ThrottleRule = { limit: 1, windowMs: 60_000 }
  for (let i = 0; i < max; i++) t.equal((await store.reserve(`k${i}`, rule, T0)).allowed, true)
  await t.rejects(store.reserve('one-too-many', rule, T0), { code: 'FST_TOKEN_AUTH_STORE_FULL', statusCode: 503, table: 'login_counters' })
  for (let i = 0; i < max; i++) {
    if ((await store.reserve(`k${i}`, rule, T0)).allowed) t.fail(`k${i} was dropped`)
  }
  t.pass('no block was dropped to make room')
  // Once their window ends, the old keys make room.
  t.same(await store.reserve('one-too-many', rule, T0 + 60_000), { allowed: true, retryAfterMs: 0 })
})

t.test('maxEntries: a key already held is updated in a full table', async (t) => {
  const store = createMemoryStore({ maxEntries: 3 })
  const rule: ThrottleRule = { limit: 3, windowMs: 60_000 }
  for (const key of ['a', 'b', 'c']) {
    for (let i = 0; i < 3; i++) t.equal((await store.reserve(key, rule, T0)).allowed, true)
  }
  t.equal((await store.reserve('a', rule, T0)).allowed, false, 'a kept its count of 3')
  await t.rejects(store.reserve('d', rule, T0), { code: 'FST_TOKEN_AUTH_STORE_FULL' })
})

t.test('a full table looks further than each write\'s sweep for an expired count before it forgets a live one', async (t) => {
  const store = createMemoryStore({ maxEntries: 20 })
  const rule: ThrottleRule = { limit: 2, windowMs: 3_600_000 }
  // At its limit: were it live, it could not be forgotten.
  for (let i = 0; i < 2; i++) await store.reserve('expired', { limit: 2, windowMs: 1000 }, T0)
  for (let i = 1; i < 20; i++) await store.reserve(`live${i}`, rule, T0)
  // The few entries the write sweeps first are live, single counts the table may forget; the
  // expired one further on makes room instead.
  t.equal((await store.reserve('new', rule, T0 + 2000)).allowed, true)
  // Asked against a limit of one, a count kept refuses; one forgotten would start over.
  for (let i = 1; i < 20; i++) {
    if ((await store.reserve(`live${i}`, { ...rule, limit: 1 }, T0 + 2000)).allowed) t.fail(`live${i} was forgotten`)
  }
  t.pass('every live count was kept')
})

t.test('a full table forgets the smallest count below its limit to make room, and never a count at its limit or a wait', async (t) => {
  const store = createMemoryStore({ maxEntries: 4 })
  const rule: ThrottleRule = { limit: 5, windowMs: 60_000 }
  const atLimit: ThrottleRule = { limit: 2, windowMs: 60_000 }
  for (let i = 0; i < 4; i++) await store.reserve('guessed', rule, T0)
  for (let i = 0; i < 2; i++) await store.reserve('refusing', atLimit, T0)
  for (let i = 0; i < 3; i++) await store.reserve('waiting', BACKOFF, T0)
  await store.reserve('once', rule, T0)
  // A flood of new keys, one attempt each: each takes the place of the one before.
  for (let i = 0; i < 100; i++) t.equal((await store.reserve(`flood-${i}`, rule, T0)).allowed, true)
  t.equal((await store.reserve('once', rule, T0)).allowed, true, 'the single attempt was forgotten…')
  t.equal((await store.reserve('guessed', rule, T0)).allowed, true, '…not the four: the fifth is allowed')
  t.equal((await store.reserve('guessed', rule, T0)).allowed, false, 'and no sixth')
  t.equal((await store.reserve('refusing', atLimit, T0)).allowed, false, 'a count at its limit still refuses')
  t.same(await store.reserve('waiting', BACKOFF, T0), { allowed: false, retryAfterMs: 1000 }, 'a wait still runs')
})

t.test('a full table of per-IP counts forgets the smallest, and keeps the count of an address past its limit', async (t) => {
  const store = createMemoryStore({ maxEntries: 10 })
  for (let i = 0; i < 31; i++) await store.hit('ip:busy', 60_000, T0)
  for (let i = 0; i < 9; i++) await store.hit(`ip:${i}`, 60_000, T0)
  // A flood from ever-new addresses, one request each.
  for (let i = 0; i < 100; i++) t.equal((await store.hit(`ip:flood-${i}`, 60_000, T0)).count, 1)
  t.same(await store.hit('ip:busy', 60_000, T0 + 1000), { count: 32, ttlMs: 59_000 }, 'all 31 still counted, in the same window')
})

t.test('a full table forgets the count that would end soonest, when counts are equal', async (t) => {
  const long: ThrottleRule = { limit: 2, windowMs: 12 * 3_600_000 }
  const short: ThrottleRule = { limit: 2, windowMs: 60_000 }
  // Written in either order, so the order the table looks at them in does not decide.
  for (const order of [['long', 'short'], ['short', 'long']]) {
    const store = createMemoryStore({ maxEntries: 2 })
    for (const key of order) await store.reserve(key, key === 'long' ? long : short, T0)
    await store.reserve('new', short, T0 + 1)
    t.equal((await store.reserve('long', long, T0 + 2)).allowed, true, `${order.join(' then ')}: the long count was kept…`)
    t.equal((await store.reserve('long', long, T0 + 2)).allowed, false, '…with its first attempt')
  }
})

t.test('a count taken back to zero decides nothing, and frees its place', async (t) => {
  const store = createMemoryStore({ maxEntries: 2 })
  const rule: ThrottleRule = { limit: 3, windowMs: 60_000 }
  await store.reserve('a', rule, T0)
  await store.reserve('b', rule, T0)
  await store.release('b')
  t.same(await store.reserve('c', rule, T0), { allowed: true, retryAfterMs: 0 }, 'b made room')
})

t.test('memory stays bounded under a flood of distinct keys, and the first ones are kept', async (t) => {
  const store = createMemoryStore({ maxEntries: 1000 })
  const rule: ThrottleRule = { limit: 1, windowMs: 3_600_000 }
  let refused = 0
  for (let i = 0; i < 20_000; i++) {
    try {
      await store.reserve(`flood-${i}`, rule, T0)
    } catch {
      refused += 1
    }
  }
  t.equal(refused, 19_000, 'every key past the first 1000 was refused')
  t.equal((await store.reserve('flood-0', rule, T0)).allowed, false, 'the first is still counted')
  t.equal((await store.reserve('flood-999', rule, T0)).allowed, false, 'and the last one held')
})

t.test('an account keeps its most recently remembered sources, and makes room for a new one by forgetting its own oldest', async (t) => {
  const store = createMemoryStore({ maxEntries: MAX_SOURCES_PER_ACCOUNT + 1 })
  const ttl = 60_000
  for (let i = 0; i < MAX_SOURCES_PER_ACCOUNT; i++) await store.rememberSource('attacker', `192.0.2.${i}`, ttl, T0 + i)
  await store.rememberSource('attacker', '192.0.2.0', ttl, T0 + 100)
  await store.rememberSource('attacker', '198.51.100.1', ttl, T0 + 101)
  t.equal(store.isKnownSource('attacker', '192.0.2.1', T0 + 102), false, 'the least recently remembered made room')
  t.equal(store.isKnownSource('attacker', '192.0.2.0', T0 + 102), true, 'remembered again, it counts as recent')
  t.equal(store.isKnownSource('attacker', '198.51.100.1', T0 + 102), true)
  for (let i = 2; i < MAX_SOURCES_PER_ACCOUNT; i++) {
    if (!store.isKnownSource('attacker', `192.0.2.${i}`, T0 + 102)) t.fail(`192.0.2.${i} was forgotten`)
  }
  // One place left in the table, which the account did not take: another account gets it.
  await store.rememberSource('user', '203.0.113.1', ttl, T0 + 103)
  t.equal(store.isKnownSource('user', '203.0.113.1', T0 + 104), true)
  // The table is full now; the account still makes room from its own.
  await store.rememberSource('attacker', '198.51.100.2', ttl, T0 + 105)
  t.equal(store.isKnownSource('attacker', '198.51.100.2', T0 + 106), true)
  await t.rejects(store.rememberSource('other', '203.0.113.2', ttl, T0 + 107), { code: 'FST_TOKEN_AUTH_STORE_FULL', table: 'known_sources' })
  t.equal(store.isKnownSource('user', '203.0.113.1', T0 + 108), true, 'another account\'s source is never pushed out')
  // Sources that expired are not counted against the cap, and make room.
  await store.rememberSource('other', '203.0.113.2', ttl, T0 + ttl + 200)
  t.equal(store.isKnownSource('other', '203.0.113.2', T0 + ttl + 201), true)
})

t.test('each kind of state has a table of its own', async (t) => {
  const store = createMemoryStore({ maxEntries: 10 })
  const atLimit: ThrottleRule = { limit: 1, windowMs: 60_000 }
  for (let i = 0; i < 10; i++) await store.reserve(`login:${i}`, atLimit, T0)
  await t.rejects(store.reserve('login:new', atLimit, T0), { code: 'FST_TOKEN_AUTH_STORE_FULL', table: 'login_counters' })
  // Raised for every request of a flood while the table is full: no stack trace to capture.
  t.equal(((await store.reserve('login:new', atLimit, T0).catch((e: unknown) => e)) as Error).stack, undefined, 'a refusal carries no stack')
  t.same(await store.hit('ip:1', 60_000, T0), { count: 1, ttlMs: 60_000 }, 'per-IP counters have room')
  await store.rememberSource('account', '192.0.2.1', 60_000, T0)
  t.equal(store.isKnownSource('account', '192.0.2.1', T0), true)
  await store.revokeAccessToken('userKey', 'jti', 60_000, T0)
  t.same(await store.revocationState('userKey', 'jti', T0), { revokedBefore: 0, jtiDenied: true, familyDenied: false })
})

t.test('a denied token stays denied past a shorter bound of its user, and a full bound table refuses a denial', async (t) => {
  const store = createMemoryStore({ maxEntries: 2 })
  // A user's bound that ends in one minute, then one of their tokens denied for ten.
  await store.revokeUser('userKeyA', 60_000, T0)
  const { revokedBefore } = await store.revocationState('userKeyA', undefined, T0)
  await store.revokeAccessToken('userKeyA', 'jti-a', 600_000, T0 + 1)
  t.same(await store.revocationState('userKeyA', 'jti-a', T0 + 2), { revokedBefore, jtiDenied: true, familyDenied: false })
  t.same(await store.revocationState('userKeyA', 'jti-a', T0 + 120_000), { revokedBefore, jtiDenied: true, familyDenied: false },
    'the bound lives on as long as the denial, so the lookup by user still finds it')
  t.same(await store.revocationState('userKeyA', 'other', T0 + 120_000), { revokedBefore, jtiDenied: false, familyDenied: false })
  t.same(await store.revocationState('userKeyA', 'jti-a', T0 + 600_001), { revokedBefore: 0, jtiDenied: false, familyDenied: false }, 'both end together')
  // Two users with a denied token fill a table of two; a third user's denial is refused, and nothing is half written.
  await store.revokeAccessToken('userKeyB', 'jti-b', 600_000, T0 + 600_001)
  await store.revokeAccessToken('userKeyC', 'jti-c', 600_000, T0 + 600_001)
  await t.rejects(store.revokeAccessToken('userKeyD', 'jti-d', 600_000, T0 + 600_001), { code: 'FST_TOKEN_AUTH_STORE_FULL', table: 'revocation_bounds' })
  t.same(await store.revocationState('userKeyB', 'jti-b', T0 + 600_002), { revokedBefore: 0, jtiDenied: true, familyDenied: false })
  t.same(await store.revocationState('userKeyD', 'jti-d', T0 + 600_002), { revokedBefore: 0, jtiDenied: false, familyDenied: false })
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
  const hot: ThrottleRule = { limit: 1_000_000, windowMs: 3_600_000 }
  const cold: ThrottleRule = { limit: 1, windowMs: 500 }
  for (let i = 0; i < 1000; i++) {
    await store.reserve('hot', hot, T0 + i * 100)
    await store.reserve(`cold${i}`, cold, T0 + i * 100)
  }
  // Had 'hot' been dropped at any point, its count would have started over below 1000.
  const rule: ThrottleRule = { limit: 1000, windowMs: 3_600_000 }
  t.equal((await store.reserve('hot', rule, T0 + 100_000)).allowed, false, 'all 1000 attempts still counted')
  t.equal((await store.reserve('cold0', cold, T0 + 100_000)).allowed, true, 'an expired cold key made room')
})
