import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { createMemoryStore, type AuthEvent } from '../lib/index.js'
import { bearer, buildApp, countArgon2Verifies, FORM, form } from './helper.js'

/*
 * A full memory store fails closed for the new key and forgets no decision (issue 13): a
 * flood of cheap requests from many addresses used to push out login blocks, revoked tokens
 * and the users index. Only the login counts' table makes room, by forgetting a count that
 * refuses nothing yet. Each table here is small (`maxEntries`) so the tests can fill it.
 */

const RIGHT = { grant_type: 'password', username: 'user1', password: 'password1' }
const WRONG = { ...RIGHT, password: 'wrong-password' }
const ADMIN = { grant_type: 'password', username: 'admin', password: 'admin-password' }

type Injectable = { inject: (options: object) => Promise<LightMyRequestResponse> }
function post (app: Injectable, fields: Record<string, string>, remoteAddress: string, url = '/token'): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url, remoteAddress, headers: FORM, payload: form(fields) })
}

function assertFull (t: Test, res: LightMyRequestResponse): void {
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'temporarily_unavailable')
  t.equal(res.headers['retry-after'], '60')
  t.equal(res.headers['cache-control'], 'no-store')
}

t.test('a flood from more addresses than the table holds: every new address is still answered, and the per-address limit, the block and the revocation hold', async (t) => {
  const events: AuthEvent[] = []
  const app = await buildApp(t, {
    plugin: {
      store: createMemoryStore({ maxEntries: 20 }),
      revocableAccessTokens: true,
      rateLimit: { max: 4 },
      loginThrottle: { perUsernameAndIp: { max: 2 }, perUsername: false },
      onAuthEvent: (e) => events.push(e)
    }
  })
  // A (username, address) pair blocked, an access token revoked, and an address past its limit.
  for (let i = 0; i < 2; i++) t.equal((await post(app, WRONG, '198.51.100.1')).statusCode, 400)
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 429, 'blocked')
  const revoked = (await post(app, ADMIN, '198.51.100.2')).json().access_token as string
  const kept = (await post(app, ADMIN, '198.51.100.2')).json().access_token as string
  t.equal((await post(app, { token: revoked }, '198.51.100.2', '/revoke')).statusCode, 200)
  t.equal((await app.inject({ url: '/protected', headers: bearer(revoked) })).statusCode, 401, 'revoked')
  for (let i = 0; i < 4; i++) t.equal((await post(app, { grant_type: 'password' }, '192.0.2.66')).statusCode, 400)
  t.equal((await post(app, { grant_type: 'password' }, '192.0.2.66')).statusCode, 429, 'past its limit')

  // Cheap requests (no password: never hashed) from 100 new addresses, five times the table size.
  const statuses: number[] = []
  for (let i = 0; i < 100; i++) statuses.push((await post(app, { grant_type: 'password' }, `10.0.${i >> 8}.${i & 255}`)).statusCode)
  t.same(statuses, Array(100).fill(400), 'each answered, none refused for a full table')
  t.notOk(events.some((e) => e.type === 'store.full'), 'the per-address counts made room')

  t.equal((await post(app, { grant_type: 'password' }, '192.0.2.66')).statusCode, 429, 'the address past its limit is still refused')
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 429, 'the block still holds')
  t.equal((await app.inject({ url: '/protected', headers: bearer(revoked) })).statusCode, 401, 'the revocation still holds')
  t.equal((await app.inject({ url: '/protected', headers: bearer(kept) })).statusCode, 200, 'the token not revoked still works')
  t.equal((await post(app, ADMIN, '198.51.100.2')).statusCode, 200, 'an address already counted still logs in')
  t.equal((await post(app, ADMIN, '203.0.113.7')).statusCode, 200, 'and so does a new one')
})

t.test('the login counters table full of counts at their limit: a new username is refused with 503 before any argon2, and existing blocks hold', async (t) => {
  const verifies = countArgon2Verifies(t)
  const events: AuthEvent[] = []
  const app = await buildApp(t, {
    plugin: { store: createMemoryStore({ maxEntries: 3 }), rateLimit: false, loginThrottle: { perUsernameAndIp: { max: 1 }, perUsername: false }, onAuthEvent: (e) => events.push(e) }
  })
  for (const username of ['user1', 'a', 'b']) t.equal((await post(app, { ...WRONG, username }, '198.51.100.1')).statusCode, 400)
  const before = verifies()
  assertFull(t, await post(app, { ...WRONG, username: 'c' }, '198.51.100.1'))
  t.equal(verifies(), before, 'no argon2 for the refused attempt')
  t.match(events.at(-1), { type: 'store.full', reason: 'login_counters' })
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 429, 'user1 is still blocked')
})

t.test('failed logins for made-up usernames fill the login counters: everyone else still logs in, and a guesser\'s counts are kept', async (t) => {
  const events: AuthEvent[] = []
  // The default limits: 5 per (username, address), 10 free attempts per username.
  const app = await buildApp(t, { plugin: { store: createMemoryStore({ maxEntries: 20 }), rateLimit: false, onAuthEvent: (e) => events.push(e) } })
  // A guesser spends four of the five guesses on user1 from its address…
  for (let i = 0; i < 4; i++) t.equal((await post(app, WRONG, '198.51.100.1')).statusCode, 400)
  // …then fails once for each of 40 made-up usernames, from ever-new addresses: two counts a
  // login, each to live 12 hours or 15 minutes, four times what the table holds.
  const statuses: number[] = []
  for (let i = 0; i < 40; i++) statuses.push((await post(app, { ...WRONG, username: `ghost-${i}` }, `10.0.0.${i}`)).statusCode)
  t.same(statuses, Array(40).fill(400), 'every one of them answered as a wrong password, none 503')
  t.equal((await post(app, ADMIN, '203.0.113.9')).statusCode, 200, 'a user with no count yet logs in from a new address')
  t.notOk(events.some((e) => e.type === 'store.full'), 'the table made room each time')
  t.equal((await post(app, WRONG, '198.51.100.1')).statusCode, 400, 'the guesser\'s fifth guess')
  t.equal((await post(app, WRONG, '198.51.100.1')).statusCode, 429, 'and no sixth: its count of four was kept through the flood')
})

t.test('the known-sources table full: the login succeeds, the new source stays unknown, and the known ones stay known', async (t) => {
  const events: AuthEvent[] = []
  const app = await buildApp(t, {
    plugin: { store: createMemoryStore({ maxEntries: 2 }), rateLimit: false, loginThrottle: { perUsernameAndIp: false, perUsername: { freeAttempts: 2 } }, onAuthEvent: (e) => events.push(e) }
  })
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 200)
  t.equal((await post(app, RIGHT, '198.51.100.2')).statusCode, 200)
  t.equal((await post(app, RIGHT, '198.51.100.3')).statusCode, 200, 'the login is not failed for it')
  t.match(events.find((e) => e.type === 'store.full'), { type: 'store.full', reason: 'known_sources', username: 'user1', ip: '198.51.100.3' })
  for (let i = 1; i <= 2; i++) t.equal((await post(app, WRONG, `203.0.113.${i}`)).statusCode, 400)
  t.equal((await post(app, RIGHT, '198.51.100.3')).statusCode, 429, 'the source that did not fit is not known')
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 200, 'a known one is')
})

t.test('one account logging in from ever-new addresses replaces its own known sources, and leaves room for everyone else\'s', async (t) => {
  const events: AuthEvent[] = []
  const app = await buildApp(t, {
    plugin: { store: createMemoryStore({ maxEntries: 25 }), rateLimit: false, loginThrottle: { perUsernameAndIp: false, perUsername: { freeAttempts: 2 } }, onAuthEvent: (e) => events.push(e) }
  })
  // An account's owner logs in from 40 addresses of an IPv6 block, one /64 each.
  for (let i = 0; i < 40; i++) t.equal((await post(app, ADMIN, `2001:db8:0:${i.toString(16)}::1`)).statusCode, 200)
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 200, 'another user logs in from a new address…')
  t.notOk(events.some((e) => e.type === 'store.full'), '…which is remembered')
  // Two failures elsewhere start user1's backoff: only a known source gets through.
  for (let i = 1; i <= 2; i++) t.equal((await post(app, WRONG, `203.0.113.${i}`)).statusCode, 400)
  t.equal((await post(app, RIGHT, '203.0.113.9')).statusCode, 429, 'an unknown source waits')
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 200, 'the address user1 logged in from is known')
})

t.test('the refresh-family table full: a new login with refresh tokens gets 503; live families keep working', async (t) => {
  const app = await buildApp(t, { plugin: { store: createMemoryStore({ maxEntries: 1 }), rateLimit: false, loginThrottle: false, refreshTokens: true } })
  const first = (await post(app, ADMIN, '198.51.100.1')).json()
  assertFull(t, await post(app, RIGHT, '198.51.100.1'))
  const refreshed = await post(app, { grant_type: 'refresh_token', refresh_token: first.refresh_token }, '198.51.100.1')
  t.equal(refreshed.statusCode, 200, 'the family that fitted rotates')
})

t.test('the revoked-tokens table full: /revoke answers 503 and the revocations already made hold', async (t) => {
  const events: AuthEvent[] = []
  const app = await buildApp(t, { plugin: { store: createMemoryStore({ maxEntries: 1 }), rateLimit: false, loginThrottle: false, revocableAccessTokens: true, onAuthEvent: (e) => events.push(e) } })
  const a = (await post(app, RIGHT, '198.51.100.1')).json().access_token as string
  const b = (await post(app, RIGHT, '198.51.100.1')).json().access_token as string
  t.equal((await post(app, { token: a }, '198.51.100.1', '/revoke')).statusCode, 200)
  assertFull(t, await post(app, { token: b }, '198.51.100.1', '/revoke'))
  t.match(events.at(-1), { type: 'store.full', reason: 'revoked_tokens' })
  t.equal((await app.inject({ url: '/protected', headers: bearer(a) })).statusCode, 401)
  t.equal((await app.inject({ url: '/protected', headers: bearer(b) })).statusCode, 200, 'not revoked: the host was told (503)')
})

t.test('the revocation-bounds table full: revokeUserTokens rejects and ends nothing', async (t) => {
  const app = await buildApp(t, { plugin: { store: createMemoryStore({ maxEntries: 2 }), rateLimit: false, loginThrottle: false, refreshTokens: true, revocableAccessTokens: true } })
  const user = (await post(app, RIGHT, '198.51.100.1')).json()
  const admin = (await post(app, ADMIN, '198.51.100.1')).json()
  await app.revokeUserTokens('user1')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await app.revokeUserTokens('other')
  await t.rejects(app.revokeUserTokens(42), { code: 'FST_TOKEN_AUTH_STORE_FULL', statusCode: 503 })
  t.equal((await app.inject({ url: '/protected', headers: bearer(user.access_token) })).statusCode, 401, 'user1 revoked')
  t.equal((await post(app, { grant_type: 'refresh_token', refresh_token: admin.refresh_token }, '198.51.100.1')).statusCode, 200, 'the admin family was not ended half-way')
})

t.test('createMemoryStore: maxEntries must be a whole number, at least 1', async (t) => {
  t.throws(() => createMemoryStore({ maxEntries: 0 }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION' })
  t.throws(() => createMemoryStore({ maxEntries: 1.5 }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION' })
})
