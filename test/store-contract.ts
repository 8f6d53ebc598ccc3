import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { MAX_FAMILIES_PER_USER, type AuthStore, type RefreshFamily, type RotateRules, type ThrottleRule } from '../lib/index.js'
import { MAX_SOURCES_PER_ACCOUNT } from '../lib/stores/types.js'

/*
 * The store contract: what every AuthStore must do, run against the memory store, a real
 * Redis and a Redis Cluster. Time is the `now` argument, on a timeline of its own (T0), so no
 * clock is faked; windows are a minute or more, because Redis also expires keys in real time.
 */

type Tap = Test

export interface ContractOptions {
  /** A fresh, empty store for each test. */
  makeStore: (t: Tap) => Promise<AuthStore>
  /** For Redis: the remaining TTL of every key the store holds, so each can be checked. */
  keyTtls?: (store: AuthStore) => Promise<Map<string, number>>
}

const T0 = 1_700_000_000_000
const MINUTE = 60_000
const WINDOW: ThrottleRule = { limit: 3, windowMs: MINUTE }
const BACKOFF: ThrottleRule = { limit: 3, windowMs: 10 * MINUTE, backoff: { maxMs: 5000 } }

/** Rotation rules: the idle time, and by default no retry grace and no deny record. */
function rules (idleMs: number, graceMs = 0, denyMs = 0): RotateRules {
  return { idleMs, graceMs, denyMs }
}

let counter = 0
/** A family of user `userKey`, with ids unique across the run. */
export function family (userKey = 'userKeyAAAAAAAAAAAAAAA', overrides: Partial<RefreshFamily> = {}): RefreshFamily {
  counter += 1
  return {
    id: `family${String(counter).padStart(16, '0')}`,
    userKey,
    sub: 'user-1',
    username: 'Zoë van Dijk',
    clientId: 'web app',
    scope: ['profile', 'admin'],
    createdAt: T0,
    expiresAt: T0 + 60 * MINUTE,
    tokenKey: randomBytes(32).toString('base64url'),
    ...overrides
  }
}

/** Two families of the same user, each created with its first hash and 30 minutes of idle time. */
async function twoFamilies (store: AuthStore, first: string, second: string): Promise<[RefreshFamily, RefreshFamily]> {
  const pair: [RefreshFamily, RefreshFamily] = [family(), family()]
  await store.createRefreshFamily(pair[0], first, 30 * MINUTE, T0, 0)
  await store.createRefreshFamily(pair[1], second, 30 * MINUTE, T0, 0)
  return pair
}

export function storeContract (t: Tap, { makeStore, keyTtls }: ContractOptions): void {
  t.test('reserve, fixed window: up to the limit, then refused with the time left; refusals do not count', async (t) => {
    const store = await makeStore(t)
    for (let i = 0; i < 3; i++) t.same(await store.reserve('k', WINDOW, T0 + i * 100), { allowed: true, retryAfterMs: 0 })
    t.same(await store.reserve('k', WINDOW, T0 + 300), { allowed: false, retryAfterMs: MINUTE - 300 })
    t.same(await store.reserve('k', WINDOW, T0 + 400), { allowed: false, retryAfterMs: MINUTE - 400 })
    t.same(await store.reserve('other', WINDOW, T0 + 400), { allowed: true, retryAfterMs: 0 }, 'keys are counted apart')
    // A new window starts with the first attempt after the old one ended.
    t.same(await store.reserve('k', WINDOW, T0 + MINUTE), { allowed: true, retryAfterMs: 0 })
    t.same(await store.reserve('k', WINDOW, T0 + MINUTE), { allowed: true, retryAfterMs: 0 })
    t.same(await store.reserve('k', WINDOW, T0 + MINUTE), { allowed: true, retryAfterMs: 0 })
    t.same(await store.reserve('k', WINDOW, T0 + MINUTE + 1), { allowed: false, retryAfterMs: MINUTE - 1 })
  })

  t.test('reserve, backoff: waits of 1 s, 2 s, 4 s from the limit-th attempt, capped', async (t) => {
    const store = await makeStore(t)
    let now = T0
    await store.reserve('u', BACKOFF, now)
    await store.reserve('u', BACKOFF, now)
    const waits: number[] = []
    for (let i = 0; i < 4; i++) {
      t.same(await store.reserve('u', BACKOFF, now), { allowed: true, retryAfterMs: 0 })
      const refused = await store.reserve('u', BACKOFF, now)
      t.equal(refused.allowed, false)
      waits.push(refused.retryAfterMs)
      t.same(await store.reserve('u', BACKOFF, now + refused.retryAfterMs - 1), { allowed: false, retryAfterMs: 1 }, 'a wait is not extended')
      now += refused.retryAfterMs
    }
    t.same(waits, [1000, 2000, 4000, 5000])
  })

  t.test('release takes back one attempt, never below zero; reset forgets a key', async (t) => {
    const store = await makeStore(t)
    const rule: ThrottleRule = { limit: 2, windowMs: MINUTE }
    await store.reserve('k', rule, T0)
    await store.reserve('k', rule, T0)
    t.equal((await store.reserve('k', rule, T0)).allowed, false)
    await store.release('k')
    t.equal((await store.reserve('k', rule, T0)).allowed, true)
    for (let i = 0; i < 5; i++) await store.release('k')
    t.equal((await store.reserve('k', rule, T0)).allowed, true)
    t.equal((await store.reserve('k', rule, T0)).allowed, true)
    t.equal((await store.reserve('k', rule, T0)).allowed, false, 'no credit was left by the extra releases')
    await store.release('never-seen')
    await store.reset('k')
    t.same(await store.reserve('k', rule, T0), { allowed: true, retryAfterMs: 0 })
    for (let i = 0; i < 3; i++) await store.reserve('b', BACKOFF, T0)
    await store.reset('b')
    t.same(await store.reserve('b', BACKOFF, T0), { allowed: true, retryAfterMs: 0 }, 'the wait is gone too')
  })

  t.test('release back to nothing forgets the count: the next attempt starts a window of its own', async (t) => {
    const store = await makeStore(t)
    const rule: ThrottleRule = { limit: 2, windowMs: MINUTE }
    // An attempt cancelled before it ran (the hashing pool was full) leaves nothing behind, in
    // every store alike: not a row or key for the rest of the window, and not its window's end.
    await store.reserve('k', rule, T0)
    await store.release('k')
    t.same(await store.reserve('k', rule, T0 + 50_000), { allowed: true, retryAfterMs: 0 })
    t.same(await store.reserve('k', rule, T0 + 59_000), { allowed: true, retryAfterMs: 0 })
    t.same(await store.reserve('k', rule, T0 + 61_000), { allowed: false, retryAfterMs: 49_000 }, 'the window began at the attempt after the release')
    // A count that made someone wait keeps its wait: the release takes back the attempt only.
    for (let i = 0; i < 3; i++) await store.reserve('b', BACKOFF, T0)
    for (let i = 0; i < 3; i++) await store.release('b')
    t.equal((await store.reserve('b', BACKOFF, T0 + 1)).allowed, false, 'still waiting out the block')
  })

  t.test('a limit past 32 bits is a limit like any other (the options allow any safe integer)', async (t) => {
    const store = await makeStore(t)
    for (const limit of [2 ** 31, Number.MAX_SAFE_INTEGER]) {
      t.same(await store.reserve(`big${limit}`, { limit, windowMs: MINUTE }, T0), { allowed: true, retryAfterMs: 0 })
      t.same(await store.reserve(`big${limit}b`, { limit, windowMs: MINUTE, backoff: { maxMs: 5000 } }, T0), { allowed: true, retryAfterMs: 0 })
    }
  })

  t.test('reserve is atomic: 20 at once on one key, exactly the limit allowed', async (t) => {
    const store = await makeStore(t)
    const rule: ThrottleRule = { limit: 5, windowMs: MINUTE }
    const results = await Promise.all(Array.from({ length: 20 }, () => store.reserve('k', rule, T0)))
    t.equal(results.filter((r) => r.allowed).length, 5)
  })

  t.test('hit counts every request in a fixed window and tells when it ends', async (t) => {
    const store = await makeStore(t)
    t.same(await store.hit('ip', MINUTE, T0), { count: 1, ttlMs: MINUTE })
    t.same(await store.hit('ip', MINUTE, T0 + 1000), { count: 2, ttlMs: MINUTE - 1000 })
    t.same(await store.hit('other', MINUTE, T0 + 1000), { count: 1, ttlMs: MINUTE })
    t.same(await store.hit('ip', MINUTE, T0 + MINUTE), { count: 1, ttlMs: MINUTE }, 'a new window')
  })

  t.test('known sources: remembered per account for ttlMs, again restarts it; no other account or source shares it', async (t) => {
    const store = await makeStore(t)
    t.equal(await store.isKnownSource('acct', '192.0.2.1', T0), false)
    await store.rememberSource('acct', '192.0.2.1', 10 * MINUTE, T0)
    t.equal(await store.isKnownSource('acct', '192.0.2.1', T0 + 1), true)
    t.equal(await store.isKnownSource('acct', '192.0.2.2', T0 + 1), false, 'another source')
    t.equal(await store.isKnownSource('other', '192.0.2.1', T0 + 1), false, 'another account')
    await store.rememberSource('acct', '2001:db8:1:2::/64', 10 * MINUTE, T0)
    t.equal(await store.isKnownSource('acct', '2001:db8:1:2::/64', T0 + 1), true)
    if (keyTtls !== undefined) {
      const ttls = [...(await keyTtls(store)).values()]
      // The two sources, and the account's index of them.
      t.ok(ttls.length === 3 && ttls.every((ttl) => ttl > 9 * MINUTE && ttl <= 10 * MINUTE), 'each lives ttlMs in Redis too')
    } else {
      t.equal(await store.isKnownSource('acct', '192.0.2.1', T0 + 10 * MINUTE), false, 'forgotten after ttlMs')
      await store.rememberSource('acct', '192.0.2.1', 10 * MINUTE, T0 + 5 * MINUTE)
      t.equal(await store.isKnownSource('acct', '192.0.2.1', T0 + 14 * MINUTE), true, 'remembered again: the time restarts')
    }
  })

  t.test('an account keeps its MAX_SOURCES_PER_ACCOUNT most recently remembered sources; one more forgets its oldest, no one else\'s', async (t) => {
    const store = await makeStore(t)
    const ttl = 30 * MINUTE
    await store.rememberSource('victim', '203.0.113.1', ttl, T0)
    for (let i = 0; i < MAX_SOURCES_PER_ACCOUNT; i++) await store.rememberSource('roamer', `192.0.2.${i}`, ttl, T0 + i)
    // Remembered again, 192.0.2.0 is the newest; the next one forgets 192.0.2.1, then 192.0.2.2.
    await store.rememberSource('roamer', '192.0.2.0', ttl, T0 + 100)
    await store.rememberSource('roamer', '198.51.100.1', ttl, T0 + 101)
    await store.rememberSource('roamer', '198.51.100.2', ttl, T0 + 102)
    const now = T0 + 103
    t.equal(await store.isKnownSource('roamer', '192.0.2.1', now), false, 'the least recently remembered made room')
    t.equal(await store.isKnownSource('roamer', '192.0.2.2', now), false, 'and the next')
    t.equal(await store.isKnownSource('roamer', '192.0.2.0', now), true, 'remembered again, it counts as recent')
    for (const source of ['198.51.100.1', '198.51.100.2', ...Array.from({ length: MAX_SOURCES_PER_ACCOUNT - 3 }, (_, i) => `192.0.2.${i + 3}`)]) {
      if (!await store.isKnownSource('roamer', source, now)) t.fail(`${source} was forgotten`)
    }
    t.equal(await store.isKnownSource('victim', '203.0.113.1', now), true, 'another account\'s source stays')
  })

  t.test('a refresh family: create, look up, rotate, and reuse revokes it', async (t) => {
    const store = await makeStore(t)
    const f = family()
    await store.createRefreshFamily(f, 'hash-1', 30 * MINUTE, T0, 0)
    t.same(await store.getRefreshFamily(f.userKey, f.id, 'hash-1', T0 + 1), { family: f, current: true }, 'every field comes back')
    t.same(await store.getRefreshFamily(f.userKey, f.id, 'hash-x', T0 + 1), { family: f, current: false })
    t.equal(await store.getRefreshFamily('someoneElseAAAAAAAAAAA', f.id, 'hash-1', T0 + 1), undefined, 'families are found under their user only')

    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'hash-1', 'hash-2', rules(30 * MINUTE), T0 + 2), 'rotated')
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'hash-2', T0 + 3))?.current, true)
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'hash-1', T0 + 3))?.current, false)
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'hash-1', 'hash-3', rules(30 * MINUTE), T0 + 4), 'reused')
    t.same(await store.getRefreshFamily(f.userKey, f.id, 'hash-2', T0 + 5), { family: f, current: false }, 'no token of the family is current')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'hash-2', 'hash-4', rules(30 * MINUTE), T0 + 5), 'reused', 'its newest token is refused, as reuse')
    t.equal(await store.rotateRefreshToken(f.userKey, 'neverExistedAAAAAAAAAA', 'h', 'h2', rules(MINUTE), T0), 'invalid')
  })

  t.test('the family\'s tokenKey comes back as it went in, after rotations too: without it no replaced token counts as reuse', async (t) => {
    // The refresh tokens carry a MAC under this key; a store that dropped it would not break
    // refreshing, only silently turn off reuse detection for tokens older than the last one.
    const store = await makeStore(t)
    const f = family()
    await store.createRefreshFamily(f, 'k1', 30 * MINUTE, T0, 0)
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'k1', T0))?.family.tokenKey, f.tokenKey)
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'k1', 'k2', rules(30 * MINUTE), T0 + 1), 'rotated')
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'older', T0 + 2))?.family.tokenKey, f.tokenKey, 'found by any hash, with its key')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'older', 'k3', rules(30 * MINUTE), T0 + 3), 'reused')
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'k2', T0 + 4))?.family.tokenKey, f.tokenKey, 'and once revoked for reuse')
    const other = family(f.userKey)
    await store.createRefreshFamily(other, 'o1', 30 * MINUTE, T0, 0)
    t.not(other.tokenKey, f.tokenKey)
    t.equal((await store.getRefreshFamily(other.userKey, other.id, 'o1', T0))?.family.tokenKey, other.tokenKey, 'each family keeps its own')
  })

  t.test('a family with no scope, and one of many scopes, come back as they went in', async (t) => {
    const store = await makeStore(t)
    const none = family(undefined, { scope: [] })
    const many = family(undefined, { scope: ['a', 'b:c', 'd/e'] })
    await store.createRefreshFamily(none, 'h', MINUTE, T0, 0)
    await store.createRefreshFamily(many, 'h', MINUTE, T0, 0)
    t.same((await store.getRefreshFamily(none.userKey, none.id, 'h', T0))?.family.scope, [])
    t.same((await store.getRefreshFamily(many.userKey, many.id, 'h', T0))?.family.scope, ['a', 'b:c', 'd/e'])
  })

  t.test('idle lifetime: a family unused for idleMs ends; each rotation restarts it', async (t) => {
    const store = await makeStore(t)
    const f = family(undefined, { expiresAt: T0 + 60 * MINUTE })
    const idle = 10 * MINUTE
    await store.createRefreshFamily(f, 'h1', idle, T0, 0)
    t.ok(await store.getRefreshFamily(f.userKey, f.id, 'h1', T0 + idle - 1))
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h2', rules(idle), T0 + idle - 1), 'rotated')
    t.ok(await store.getRefreshFamily(f.userKey, f.id, 'h2', T0 + 2 * idle - 2), 'alive: the rotation restarted the idle time')
    t.equal(await store.getRefreshFamily(f.userKey, f.id, 'h2', T0 + 2 * idle - 1), undefined)
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h2', 'h3', rules(idle), T0 + 2 * idle - 1), 'invalid', 'an idle family cannot rotate')
  })

  t.test('absolute lifetime: no rotation keeps a family past expiresAt', async (t) => {
    const store = await makeStore(t)
    const f = family(undefined, { expiresAt: T0 + 15 * MINUTE })
    const idle = 10 * MINUTE
    await store.createRefreshFamily(f, 'h1', idle, T0, 0)
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h2', rules(idle), T0 + 9 * MINUTE), 'rotated')
    t.ok(await store.getRefreshFamily(f.userKey, f.id, 'h2', T0 + 15 * MINUTE - 1))
    t.equal(await store.getRefreshFamily(f.userKey, f.id, 'h2', T0 + 15 * MINUTE), undefined, 'not 19 minutes, as the idle time alone would give')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h2', 'h3', rules(idle), T0 + 15 * MINUTE), 'invalid')
  })

  t.test('revokeRefreshFamily ends one family and tells whether it existed', async (t) => {
    const store = await makeStore(t)
    const a = family()
    const b = family()
    await store.createRefreshFamily(a, 'ha', MINUTE, T0, 0)
    await store.createRefreshFamily(b, 'hb', MINUTE, T0, 0)
    t.equal(await store.revokeRefreshFamily(a.userKey, a.id, 0, T0), true)
    t.equal(await store.revokeRefreshFamily(a.userKey, a.id, 0, T0), false)
    t.equal(await store.getRefreshFamily(a.userKey, a.id, 'ha', T0), undefined)
    t.equal((await store.getRefreshFamily(b.userKey, b.id, 'hb', T0))?.current, true, 'the user\'s other family lives on')
    t.equal((await store.revocationState(a.userKey, undefined, T0, a.id)).familyDenied, false, 'with denyMs 0 nothing is denied')
  })

  t.test('revokeRefreshFamily with denyMs denies the family\'s access tokens, when the family existed', async (t) => {
    const store = await makeStore(t)
    const [ended, other] = await twoFamilies(store, 'h1', 'o1')
    t.equal(await store.revokeRefreshFamily(ended.userKey, ended.id, 15 * MINUTE, T0 + 1), true)
    t.same(await store.revocationState(ended.userKey, 'some-jti', T0 + 2, ended.id), { revokedBefore: 0, jtiDenied: false, familyDenied: true })
    t.equal((await store.revocationState(other.userKey, 'some-jti', T0 + 2, other.id)).familyDenied, false, 'only that family')
    t.equal((await store.getRefreshFamily(other.userKey, other.id, 'o1', T0 + 2))?.current, true, 'whose sibling lives on')
    // An id that names no family (made up, or ended already) records nothing: a client cannot
    // fill the deny list with ids of its choosing.
    const unknown = family()
    t.equal(await store.revokeRefreshFamily(unknown.userKey, unknown.id, 15 * MINUTE, T0 + 3), false)
    t.equal((await store.revocationState(unknown.userKey, undefined, T0 + 4, unknown.id)).familyDenied, false)
  })

  /** `count` families of `userKey`, the i-th created at `start` + i with 30 minutes of idle time (so ending in that order). */
  async function manyFamilies (t: Tap, store: AuthStore, userKey: string, count: number, start = T0): Promise<RefreshFamily[]> {
    const made = Array.from({ length: count }, () => family(userKey))
    let created = 0
    for (const [i, f] of made.entries()) if (await store.createRefreshFamily(f, `h${i}`, 30 * MINUTE, start + i, 0)) created += 1
    t.equal(created, count, `${count} families created`)
    return made
  }
  const alive = async (store: AuthStore, fs: RefreshFamily[], now: number): Promise<boolean[]> =>
    await Promise.all(fs.map(async (f) => await store.getRefreshFamily(f.userKey, f.id, 'any', now) !== undefined))

  t.test('a user keeps at most MAX_FAMILIES_PER_USER families: one more ends the least recently used, and no other', async (t) => {
    const store = await makeStore(t)
    const cap = MAX_FAMILIES_PER_USER
    const mine = await manyFamilies(t, store, 'userKeyCappedAAAAAAAAA', cap)
    const theirs = family('userKeyNeighbourAAAAAA')
    await store.createRefreshFamily(theirs, 'n', 30 * MINUTE, T0, 0)
    t.same(await alive(store, mine, T0 + cap), mine.map(() => true), 'up to the cap, every family lives')
    // The first family was used lately: its idle deadline is now the latest of all.
    t.equal(await store.rotateRefreshToken(mine[0]!.userKey, mine[0]!.id, 'h0', 'h0b', rules(30 * MINUTE), T0 + 500), 'rotated')

    const next = family('userKeyCappedAAAAAAAAA')
    t.equal(await store.createRefreshFamily(next, 'x', 30 * MINUTE, T0 + 600, 0), true)
    const after = await alive(store, mine, T0 + 601)
    t.equal(after[1], false, 'the family idle the longest ended')
    t.equal(after.filter((live) => !live).length, 1, 'and only that one')
    t.equal(after[0], true, 'the oldest by creation lives on: it was used lately')
    t.ok(await store.getRefreshFamily(next.userKey, next.id, 'x', T0 + 601), 'the new family lives')
    t.ok(await store.getRefreshFamily(theirs.userKey, theirs.id, 'n', T0 + 601), 'another user\'s family is not touched')
    t.same(await store.revocationState(mine[1]!.userKey, 'jti', T0 + 601, mine[1]!.id), { revokedBefore: 0, jtiDenied: false, familyDenied: false },
      'its access tokens are not denied: they live out their lifetime')

    // Again and again: the count stays at the cap.
    const more = await manyFamilies(t, store, 'userKeyCappedAAAAAAAAA', 10, T0 + 700)
    const live = (await alive(store, [...mine, next, ...more], T0 + 710)).filter(Boolean).length
    t.equal(live, cap, `still ${cap} families`)
    t.equal(await store.rotateRefreshToken(mine[2]!.userKey, mine[2]!.id, 'h2', 'h2b', rules(30 * MINUTE), T0 + 710), 'invalid', 'an ended family cannot rotate')
  })

  t.test('the cap counts live families only: those ended by idle time, revocation or the cap make room', async (t) => {
    const store = await makeStore(t)
    const cap = MAX_FAMILIES_PER_USER
    const userKey = 'userKeyIdleAAAAAAAAAAA'
    const short = Array.from({ length: cap / 2 }, () => family(userKey))
    for (const f of short) await store.createRefreshFamily(f, 'h', MINUTE, T0, 0)
    const long = await manyFamilies(t, store, userKey, cap / 2)
    // The short-lived half ended by idle time; four of the others are revoked.
    for (const f of long.slice(0, 4)) t.equal(await store.revokeRefreshFamily(f.userKey, f.id, 0, T0 + 2 * MINUTE), true)
    const fresh = await manyFamilies(t, store, userKey, cap / 2 + 4, T0 + 2 * MINUTE)
    const now = T0 + 3 * MINUTE
    t.same(await alive(store, long.slice(4), now), long.slice(4).map(() => true), 'no live family ended to make room for dead ones')
    t.same(await alive(store, fresh, now), fresh.map(() => true))
  })

  t.test('revokeUser ends every family of the user, and only theirs, and sets the bound to a new epoch', async (t) => {
    const store = await makeStore(t)
    const mine = [family('userKeyMineAAAAAAAAAAA'), family('userKeyMineAAAAAAAAAAA'), family('userKeyMineAAAAAAAAAAA')]
    const theirs = family('userKeyTheirsAAAAAAAAA')
    for (const f of [...mine, theirs]) await store.createRefreshFamily(f, 'h', 30 * MINUTE, T0, 0)
    t.equal(await store.revocationEpoch(), 0, 'no revocation yet')
    t.same(await store.revocationState('userKeyMineAAAAAAAAAAA', undefined, T0), { revokedBefore: 0, jtiDenied: false, familyDenied: false })

    await store.revokeUser('userKeyMineAAAAAAAAAAA', 15 * MINUTE, T0)
    for (const f of mine) t.equal(await store.getRefreshFamily(f.userKey, f.id, 'h', T0), undefined)
    t.ok(await store.getRefreshFamily(theirs.userKey, theirs.id, 'h', T0), 'another user keeps their sessions')
    t.equal(await store.revocationEpoch(), T0, 'the epoch moved to the time of the revocation')
    t.same(await store.revocationState('userKeyMineAAAAAAAAAAA', undefined, T0), { revokedBefore: T0, jtiDenied: false, familyDenied: false })
    t.same(await store.revocationState('userKeyTheirsAAAAAAAAA', undefined, T0), { revokedBefore: 0, jtiDenied: false, familyDenied: false })

    // Two revocations in one millisecond, or with a clock behind: the epoch still grows.
    await store.revokeUser('userKeyMineAAAAAAAAAAA', MINUTE, T0)
    t.equal(await store.revocationEpoch(), T0 + 1)
    await store.revokeUser('userKeyTheirsAAAAAAAAA', MINUTE, T0 - 5000)
    t.equal(await store.revocationEpoch(), T0 + 2)
    t.equal((await store.revocationState('userKeyMineAAAAAAAAAAA', undefined, T0)).revokedBefore, T0 + 1)
    t.equal((await store.revocationState('userKeyTheirsAAAAAAAAA', undefined, T0)).revokedBefore, T0 + 2)

    // A login that read the epoch after the revocation starts a family that works.
    const fresh = family('userKeyMineAAAAAAAAAAA')
    t.equal(await store.createRefreshFamily(fresh, 'h', 30 * MINUTE, T0, T0 + 1), true)
    t.equal(await store.rotateRefreshToken(fresh.userKey, fresh.id, 'h', 'h2', rules(30 * MINUTE), T0 + 1), 'rotated')
  })

  t.test('createRefreshFamily creates nothing for a grant that read an epoch before the user\'s revocation', async (t) => {
    const store = await makeStore(t)
    const user = 'userKeyRaceAAAAAAAAAAA'
    const epoch = await store.revocationEpoch()
    await store.revokeUser(user, 15 * MINUTE, T0)
    const late = family(user)
    t.equal(await store.createRefreshFamily(late, 'h', 30 * MINUTE, T0 + 1, epoch), false, 'refused')
    t.equal(await store.getRefreshFamily(user, late.id, 'h', T0 + 1), undefined, 'and nothing stored')
    // Another user's revocation moves the epoch, but not this user's bound.
    await store.revokeUser('userKeyOtherAAAAAAAAAA', 15 * MINUTE, T0 + 2)
    const other = family(user)
    t.equal(await store.createRefreshFamily(other, 'h', 30 * MINUTE, T0 + 3, T0), true, 'the epoch of the user\'s own revocation is enough')
    t.equal((await store.getRefreshFamily(user, other.id, 'h', T0 + 3))?.current, true)
  })

  t.test('revokeUser on a user with many families, some already ended', async (t) => {
    const store = await makeStore(t)
    const user = 'userKeyManyAAAAAAAAAAA'
    // A live family, 40 short-lived ones (1 ms), then more live ones: a user's list of families
    // is pruned of ended ones as it grows, and the live ones stay on it.
    const live = [family(user)]
    await store.createRefreshFamily(live[0]!, 'h', 30 * MINUTE, T0, 0)
    for (let i = 0; i < 40; i++) await store.createRefreshFamily(family(user, { expiresAt: T0 + 1 }), 'h', 1, T0, 0)
    live.push(family(user), family(user))
    for (const f of live.slice(1)) await store.createRefreshFamily(f, 'h', 30 * MINUTE, T0 + 10, 0)
    t.ok(await store.getRefreshFamily(user, live[0]!.id, 'h', T0 + 20))
    await store.revokeUser(user, MINUTE, T0 + 20)
    for (const f of live) t.equal(await store.getRefreshFamily(user, f.id, 'h', T0 + 20), undefined)
  })

  t.test('revokeAccessToken denies one jti of one user, for ttlMs', async (t) => {
    const store = await makeStore(t)
    await store.revokeAccessToken('userKeyMineAAAAAAAAAAA', 'jti-1', 15 * MINUTE, T0)
    t.same(await store.revocationState('userKeyMineAAAAAAAAAAA', 'jti-1', T0 + 1), { revokedBefore: 0, jtiDenied: true, familyDenied: false })
    t.same(await store.revocationState('userKeyMineAAAAAAAAAAA', 'jti-2', T0 + 1), { revokedBefore: 0, jtiDenied: false, familyDenied: false })
    t.same(await store.revocationState('userKeyTheirsAAAAAAAAA', 'jti-1', T0 + 1), { revokedBefore: 0, jtiDenied: false, familyDenied: false })
    t.same(await store.revocationState('userKeyMineAAAAAAAAAAA', undefined, T0 + 1), { revokedBefore: 0, jtiDenied: false, familyDenied: false })
  })

  t.test('rotation is atomic: 10 refreshes at once with one token and no grace, exactly one succeeds', async (t) => {
    const store = await makeStore(t)
    const f = family()
    await store.createRefreshFamily(f, 'current', 30 * MINUTE, T0, 0)
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      store.rotateRefreshToken(f.userKey, f.id, 'current', `next-${i}`, rules(30 * MINUTE), T0 + 1)))
    t.equal(outcomes.filter((o) => o === 'rotated').length, 1, 'one rotated')
    t.equal(outcomes.filter((o) => o === 'reused').length, 9, 'the other nine are reuse')
    for (const hash of ['current', 'next-0', 'next-9']) {
      t.equal((await store.getRefreshFamily(f.userKey, f.id, hash, T0 + 2))?.current, false, 'and the reuse revoked the family')
    }
  })

  t.test('retry grace: the replaced token again within graceMs retires the successor; past it, reuse', async (t) => {
    const store = await makeStore(t)
    const f = family()
    const grace = 10_000
    await store.createRefreshFamily(f, 'h1', 30 * MINUTE, T0, 0)
    t.same(await store.getRefreshFamily(f.userKey, f.id, 'h1', T0), { family: f, current: true }, 'nothing replaced yet')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h2', rules(30 * MINUTE, grace), T0 + 100), 'rotated')
    t.same(await store.getRefreshFamily(f.userKey, f.id, 'h1', T0 + 200), { family: f, current: false, replacedAt: T0 + 100 }, 'the replaced token is known as such')

    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h3', rules(30 * MINUTE, grace), T0 + 200), 'retried')
    t.same(await store.getRefreshFamily(f.userKey, f.id, 'h2', T0 + 300), { family: f, current: false }, 'the successor handed out before is retired')
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'h3', T0 + 300))?.current, true, 'the new one is current')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h4', rules(30 * MINUTE, grace), T0 + 100 + grace - 1), 'retried',
      'the grace counts from the rotation')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h5', rules(30 * MINUTE, grace), T0 + 100 + grace), 'reused', 'and ends there')
    t.equal((await store.getRefreshFamily(f.userKey, f.id, 'h4', T0 + 100 + grace))?.current, false, 'the family is revoked')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h6', rules(30 * MINUTE, grace), T0 + 200), 'reused', 'for good')
  })

  t.test('retry grace: a retired successor, or a token older than the replaced one, is reuse', async (t) => {
    const store = await makeStore(t)
    for (const [stale, why] of [['h2', 'the successor a retry retired'], ['h1', 'a token two rotations back']] as const) {
      const f = family()
      await store.createRefreshFamily(f, 'h1', 30 * MINUTE, T0, 0)
      await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h2', rules(30 * MINUTE, MINUTE), T0)
      if (stale === 'h2') t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h3', rules(30 * MINUTE, MINUTE), T0 + 1), 'retried')
      else t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h2', 'h3', rules(30 * MINUTE, MINUTE), T0 + 1), 'rotated')
      t.equal(await store.rotateRefreshToken(f.userKey, f.id, stale, 'h4', rules(30 * MINUTE, MINUTE), T0 + 2), 'reused', why)
    }
  })

  t.test('retry grace is atomic: 10 retries at once with the replaced token leave exactly one live token', async (t) => {
    const store = await makeStore(t)
    const f = family()
    await store.createRefreshFamily(f, 'old', 30 * MINUTE, T0, 0)
    await store.rotateRefreshToken(f.userKey, f.id, 'old', 'lost', rules(30 * MINUTE, MINUTE), T0)
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      store.rotateRefreshToken(f.userKey, f.id, 'old', `retry-${i}`, rules(30 * MINUTE, MINUTE), T0 + 1)))
    t.same(new Set(outcomes), new Set(['retried']))
    const live = []
    for (const hash of ['old', 'lost', ...outcomes.map((_, i) => `retry-${i}`)]) {
      if ((await store.getRefreshFamily(f.userKey, f.id, hash, T0 + 2))?.current === true) live.push(hash)
    }
    t.equal(live.length, 1, `one live token: ${live.join(', ')}`)
  })

  t.test('reuse denies the family\'s access tokens for denyMs; a rotation or a retry denies nothing', async (t) => {
    const store = await makeStore(t)
    const [f, quiet] = await twoFamilies(store, 'h1', 'q1')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h2', rules(30 * MINUTE, MINUTE, 15 * MINUTE), T0), 'rotated')
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h1', 'h3', rules(30 * MINUTE, MINUTE, 15 * MINUTE), T0 + 1), 'retried')
    t.equal((await store.revocationState(f.userKey, undefined, T0 + 1, f.id)).familyDenied, false)
    t.equal(await store.rotateRefreshToken(f.userKey, f.id, 'h2', 'h4', rules(30 * MINUTE, MINUTE, 15 * MINUTE), T0 + 2), 'reused')
    t.same(await store.revocationState(f.userKey, 'some-jti', T0 + 3, f.id), { revokedBefore: 0, jtiDenied: false, familyDenied: true })
    t.equal((await store.revocationState(f.userKey, 'some-jti', T0 + 3, quiet.id)).familyDenied, false, 'only that family')
    t.equal((await store.revocationState(f.userKey, 'some-jti', T0 + 3)).familyDenied, false, 'and only when asked')

    // Without revocable access tokens (denyMs 0), reuse revokes the family and records nothing more.
    t.equal(await store.rotateRefreshToken(quiet.userKey, quiet.id, 'stolen', 'q2', rules(30 * MINUTE, MINUTE, 0), T0 + 4), 'reused')
    t.equal((await store.revocationState(quiet.userKey, undefined, T0 + 5, quiet.id)).familyDenied, false)
  })

  if (keyTtls !== undefined) {
    t.test('every key the store writes has a TTL', async (t) => {
      const store = await makeStore(t)
      await store.reserve('login', WINDOW, T0)
      await store.reserve('backoff', BACKOFF, T0)
      await store.reserve('backoff', BACKOFF, T0)
      await store.release('backoff')
      await store.hit('ip', MINUTE, T0)
      const f = family('userKeyTtlAAAAAAAAAAAA')
      await store.createRefreshFamily(f, 'h', 30 * MINUTE, T0, 0)
      await store.rotateRefreshToken(f.userKey, f.id, 'h', 'h2', rules(30 * MINUTE), T0)
      await store.createRefreshFamily(family('userKeyTtl2AAAAAAAAAAA'), 'h', 30 * MINUTE, T0, 0)
      await store.revokeAccessToken('userKeyTtlAAAAAAAAAAAA', 'jti', MINUTE, T0)
      await store.rotateRefreshToken(f.userKey, f.id, 'h', 'h3', rules(30 * MINUTE, 0, MINUTE), T0)
      await store.revokeUser('userKeyTtl3AAAAAAAAAAA', MINUTE, T0)
      const ttls = await keyTtls(store)
      t.ok(ttls.size >= 9, `the store wrote its keys (${ttls.size})`)
      t.ok([...ttls.keys()].some((key) => key.endsWith(':epoch')), 'the revocation epoch too')
      for (const [key, ttl] of ttls) t.ok(ttl > 0, `${key} expires (${ttl} ms)`)
    })
  }
}
