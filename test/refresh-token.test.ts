import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { createHash } from 'node:crypto'
import { createMemoryStore, createRedisStore, type AuthEvent, type AuthStore, type UserRecord } from '../lib/index.js'
import { bearer, buildApp, cheapHash, demoUsers, liveTokens, NO_REDIS, redisClient, testPrefix, tokenRequest, type BuildOptions } from './helper.js'

/*
 * The refresh grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2), through
 * the token endpoint.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const REFRESH_TOKEN = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/

async function app (tt: Tap, plugin: BuildOptions['plugin'] = {}) {
  return buildApp(tt, { plugin: { refreshTokens: true, rateLimit: false, ...plugin } })
}

async function login (a: FastifyInstance, username = 'user1', password = 'password1', extra: Record<string, string> = {}) {
  const res = await tokenRequest(a, { grant_type: 'password', username, password, ...extra })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json() as { access_token: string, refresh_token: string, scope?: string }
}

function refresh (a: FastifyInstance, token: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) {
  return tokenRequest(a, { grant_type: 'refresh_token', refresh_token: token, ...extra }, headers)
}

function assertInvalidGrant (tt: Tap, res: LightMyRequestResponse, message = 'invalid_grant'): void {
  tt.equal(res.statusCode, 400, message)
  tt.equal(res.json().error, 'invalid_grant', message)
  tt.equal(res.headers['cache-control'], 'no-store', message)
}

async function status (a: FastifyInstance, accessToken: string): Promise<number> {
  return (await a.inject({ url: '/protected', headers: bearer(accessToken) })).statusCode
}

/** Date.now under the test's control, restored at teardown. */
function fakeClock (tt: Tap): { advance: (seconds: number) => void } {
  let now = Date.now()
  tt.capture(Date, 'now', () => now)
  return { advance: (seconds) => { now += seconds * 1000 } }
}

t.test('off by default: no refresh_token, and the refresh grant is unsupported', async (t) => {
  const a = await buildApp(t)
  const res = await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(res.statusCode, 200)
  t.notOk('refresh_token' in res.json())
  const refused = await refresh(a, 'a'.repeat(22) + '.' + 'b'.repeat(22) + '.' + 'c'.repeat(43))
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().error, 'unsupported_grant_type')
})

t.test('the password grant also returns an opaque refresh token of 256 random bits or more', async (t) => {
  const a = await app(t)
  const first = await login(a)
  const second = await login(a)
  t.match(first.refresh_token, REFRESH_TOKEN)
  t.not(first.refresh_token, second.refresh_token)
  // 128 random bits locate the family, 128 more start the secret, which ends with a 128-bit MAC
  // under the family's key (only a token the family issued can count as reuse).
  const [, locator, secret] = first.refresh_token.split('.') as [string, string, string]
  t.equal(Buffer.from(locator, 'base64url').length, 16, '16 random bytes locate the family')
  t.equal(Buffer.from(secret, 'base64url').length, 32, '16 random bytes and a 16-byte MAC')
  t.not(secret.slice(0, 21), second.refresh_token.split('.')[2]?.slice(0, 21), 'whose random part differs from token to token')
  t.equal((await a.inject({ url: '/protected', headers: bearer(first.access_token) })).statusCode, 200)
})

t.test('the refresh grant returns a new access token and a new refresh token', async (t) => {
  const a = await app(t)
  const { refresh_token: r1 } = await login(a, 'admin', 'admin-password')
  const res = await refresh(a, r1)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
  const body = res.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type'])
  t.equal(body.token_type, 'Bearer')
  t.equal(body.expires_in, 900)
  t.equal(body.scope, 'profile admin')
  t.match(body.refresh_token, REFRESH_TOKEN)
  t.not(body.refresh_token, r1, 'rotated')
  const me = await a.inject({ url: '/protected', headers: bearer(body.access_token) })
  t.same(me.json(), { sub: '42', scope: ['profile', 'admin'] })
  t.equal((await refresh(a, body.refresh_token)).statusCode, 200, 'the new refresh token works in turn')
})

t.test('refresh tokens are stored only as a hash', async (t) => {
  const seen: string[] = []
  const memory = createMemoryStore()
  // Every argument the plugin hands the store, recorded.
  const store = Object.fromEntries(Object.entries(memory).map(([name, fn]) => [name, async (...args: unknown[]) => {
    seen.push(JSON.stringify(args))
    return await (fn as (...a: unknown[]) => Promise<unknown>)(...args)
  }])) as unknown as AuthStore
  const a = await app(t, { store })
  const { refresh_token: r1 } = await login(a)
  const r2 = (await refresh(a, r1)).json().refresh_token as string
  const all = seen.join('\n')
  for (const token of [r1, r2]) {
    t.notOk(all.includes(token.split('.')[2] as string), 'no token (nor its secret part) reaches the store')
    t.ok(all.includes(createHash('sha256').update(token).digest('base64url')), 'its SHA-256 does')
  }
})

// Without the retry grace, the tests of reuse need not wait it out.
const NO_GRACE = { refreshTokens: { retryGrace: 0 } }

t.test('reuse of a rotated token: invalid_grant, the whole family revoked, a security event', async (t) => {
  const events: AuthEvent[] = []
  const a = await app(t, { ...NO_GRACE, onAuthEvent: (e) => events.push(e) })
  const { refresh_token: r1 } = await login(a)
  const other = await login(a)
  const r2 = (await refresh(a, r1)).json().refresh_token as string

  assertInvalidGrant(t, await refresh(a, r1), 'the rotated token')
  const reuse = events.filter((e) => e.type === 'refresh.reuse')
  t.equal(reuse.length, 1)
  t.match(reuse[0], { type: 'refresh.reuse', username: 'user1', clientId: 'public', reason: 'reuse' })
  t.notOk(JSON.stringify(events).includes(r1.split('.')[2] as string), 'no token in an event')

  assertInvalidGrant(t, await refresh(a, r2), 'the newest token of the family')
  t.equal((await refresh(a, other.refresh_token)).statusCode, 200, 'another login of the same user lives on')
})

t.test('a family revoked between the lookup and the rotation (a /revoke racing the refresh)', async (t) => {
  const memory = createMemoryStore()
  const store: AuthStore = {
    ...memory,
    async getRefreshFamily (...args) {
      const found = await memory.getRefreshFamily(...args)
      await memory.revokeRefreshFamily(args[0], args[1], 0, Date.now())
      return found
    }
  }
  const events: AuthEvent[] = []
  const a = await app(t, { store, onAuthEvent: (e) => events.push(e) })
  const { refresh_token: token } = await login(a)
  assertInvalidGrant(t, await refresh(a, token))
  t.match(events.at(-1), { type: 'refresh.failure', username: 'user1', reason: 'unknown' })
})

t.test('10 refreshes at once with one token and no retry grace: exactly one succeeds, the rest are reuse', async (t) => {
  const events: AuthEvent[] = []
  const a = await app(t, { ...NO_GRACE, onAuthEvent: (e) => events.push(e) })
  const { refresh_token: r1 } = await login(a)
  const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(a, r1)))
  const ok = answers.filter((r) => r.statusCode === 200)
  t.equal(ok.length, 1)
  for (const res of answers.filter((r) => r.statusCode !== 200)) assertInvalidGrant(t, res)
  t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 9)
  assertInvalidGrant(t, await refresh(a, ok[0]!.json().refresh_token), 'the winner\'s token died with its family')
})

t.test('retry grace (RFC 9700 §4.14.2): the replaced token again, within 10 s, gets a fresh pair and retires the one handed out before', async (t) => {
  const store = createMemoryStore()
  const events: AuthEvent[] = []
  const a = await app(t, { store, onAuthEvent: (e) => events.push(e) })
  const { refresh_token: r1 } = await login(a)
  const lost = await refresh(a, r1)
  t.equal(lost.statusCode, 200, 'a refresh whose answer never reached the client')
  const retried = await refresh(a, r1)
  t.equal(retried.statusCode, 200, 'the client retries with the token it still has')
  const { refresh_token: r3, access_token: a3 } = retried.json()
  t.match(r3, REFRESH_TOKEN)
  t.not(r3, lost.json().refresh_token)
  t.equal(r3.split('.')[1], r1.split('.')[1], 'in the same family')
  t.match(events.at(-1), { type: 'refresh.success', username: 'user1', reason: 'retry' })
  t.same(await liveTokens(store, [r1, lost.json().refresh_token, r3]), [r3], 'the family has exactly one live token: the last one handed out')
  t.equal((await a.inject({ url: '/protected', headers: bearer(a3) })).statusCode, 200)

  const next = await refresh(a, r3)
  t.equal(next.statusCode, 200, 'the client goes on with it')
  assertInvalidGrant(t, await refresh(a, lost.json().refresh_token), 'the retired successor, should it ever turn up, is reuse')
  assertInvalidGrant(t, await refresh(a, next.json().refresh_token), 'which ends the family')
})

t.test('retry grace: past retryGrace the replaced token is reuse; the grace counts from the refresh, not from the last retry', async (t) => {
  const clock = fakeClock(t)
  const a = await app(t, { refreshTokens: { retryGrace: 10 } })
  const { refresh_token: r1 } = await login(a)
  t.equal((await refresh(a, r1)).statusCode, 200)
  clock.advance(6)
  t.equal((await refresh(a, r1)).statusCode, 200, 'a retry after 6 s')
  clock.advance(4)
  const late = await refresh(a, r1)
  assertInvalidGrant(t, late, 'after 10 s it is reuse, though the last retry was 4 s ago')

  const b = await app(t, { refreshTokens: { retryGrace: 10 } })
  const { refresh_token: s1 } = await login(b)
  const s2 = (await refresh(b, s1)).json().refresh_token as string
  clock.advance(9)
  t.equal((await refresh(b, s1)).statusCode, 200, 'within 10 s')
  clock.advance(1)
  assertInvalidGrant(t, await refresh(b, s1), 'at 10 s')
  assertInvalidGrant(t, await refresh(b, s2), 'and the family has ended')
})

t.test('retry grace: 10 retries at once with the replaced token leave exactly one working refresh token', async (t) => {
  const store = createMemoryStore()
  const events: AuthEvent[] = []
  const a = await app(t, { store, onAuthEvent: (e) => events.push(e) })
  const { refresh_token: r1 } = await login(a)
  t.equal((await refresh(a, r1)).statusCode, 200)
  const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(a, r1)))
  t.same(answers.map((r) => r.statusCode), Array(10).fill(200), 'every retry gets a pair')
  t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 0)
  const tokens = answers.map((r) => r.json().refresh_token as string)
  const live = await liveTokens(store, tokens)
  t.equal(live.length, 1, 'one of them is live')
  t.equal((await refresh(a, live[0]!)).statusCode, 200, 'and works')
  assertInvalidGrant(t, await refresh(a, tokens.find((token) => token !== live[0])!), 'any other is reuse')
})

t.test('with the retry grace, 10 refreshes at once with the current token all succeed and leave one live token', async (t) => {
  const store = createMemoryStore()
  const a = await app(t, { store })
  const { refresh_token: r1 } = await login(a)
  const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(a, r1)))
  t.same(answers.map((r) => r.statusCode), Array(10).fill(200), 'the first rotates, the others are retries of it')
  t.equal((await liveTokens(store, answers.map((r) => r.json().refresh_token as string))).length, 1)
})

t.test('reuse denies every access token issued from the family at once, with revocable access tokens', async (t) => {
  const stores: Array<[string, () => Promise<AuthStore>]> = [['memory', async () => createMemoryStore()]]
  if (NO_REDIS === false) {
    stores.push(['redis', async () => {
      const prefix = testPrefix()
      return createRedisStore({ client: await redisClient(t, prefix), prefix })
    }])
  } else {
    t.comment(NO_REDIS)
  }
  for (const [name, makeStore] of stores) {
    const a = await app(t, { ...NO_GRACE, store: await makeStore(), revocableAccessTokens: true })
    const first = await login(a)
    const second = (await refresh(a, first.refresh_token)).json()
    const third = (await refresh(a, second.refresh_token)).json()
    const otherSession = await login(a)
    for (const token of [first.access_token, second.access_token, third.access_token]) t.equal(await status(a, token), 200)

    assertInvalidGrant(t, await refresh(a, first.refresh_token), `${name}: a thief replays a replaced token`)
    for (const [i, token] of [first.access_token, second.access_token, third.access_token].entries()) {
      t.equal(await status(a, token), 401, `${name}: access token ${i + 1} of the family is refused at once`)
    }
    t.equal(await status(a, otherSession.access_token), 200, `${name}: the user's other session lives on`)
    t.equal((await refresh(a, otherSession.refresh_token)).statusCode, 200)
  }
})

t.test('without revocable access tokens, reuse ends the family; its access tokens run out their time', async (t) => {
  const a = await app(t, NO_GRACE)
  const first = await login(a)
  const second = (await refresh(a, first.refresh_token)).json()
  assertInvalidGrant(t, await refresh(a, first.refresh_token))
  assertInvalidGrant(t, await refresh(a, second.refresh_token))
  t.equal(await status(a, second.access_token), 200, 'documented: they expire on their own')
})

t.test('another grant type while refresh tokens are on: unsupported_grant_type', async (t) => {
  const a = await app(t)
  const res = await tokenRequest(a, { grant_type: 'client_credentials' })
  t.equal(res.statusCode, 400)
  t.equal(res.json().error, 'unsupported_grant_type')
})

t.test('a user with no scopes refreshes to a token with no scope', async (t) => {
  const user: UserRecord = { username: 'plain', passwordHash: await cheapHash('plain-password') }
  const a = await app(t, { findUser: async (name: string) => name === 'plain' ? user : null })
  const { refresh_token: token } = await login(a, 'plain', 'plain-password')
  const res = await refresh(a, token)
  t.equal(res.statusCode, 200)
  t.notOk('scope' in res.json())
  t.same((await a.inject({ url: '/protected', headers: bearer(res.json().access_token) })).json().scope, [])
})

t.test('malformed, unknown and missing refresh tokens', async (t) => {
  const events: AuthEvent[] = []
  const a = await app(t, { onAuthEvent: (e) => events.push(e) })
  assertInvalidGrant(t, await refresh(a, 'not-a-token'))
  assertInvalidGrant(t, await refresh(a, 'A'.repeat(22) + '.' + 'B'.repeat(22) + '.' + 'C'.repeat(43)))
  t.same(events.map((e) => [e.type, e.reason]), [['refresh.failure', 'unknown'], ['refresh.failure', 'unknown']])
  const missing = await tokenRequest(a, { grant_type: 'refresh_token' })
  t.equal(missing.statusCode, 400)
  t.equal(missing.json().error, 'invalid_request')
  const { refresh_token: r1 } = await login(a)
  const repeated = await tokenRequest(a, { grant_type: 'refresh_token', refresh_token: [r1, r1] })
  t.equal(repeated.json().error, 'invalid_request')
  t.equal((await refresh(a, r1)).statusCode, 200, 'a refused request did not spend the token')
})

t.test('idle lifetime: a token unused for idleTtl is refused; each refresh restarts it', async (t) => {
  const clock = fakeClock(t)
  const a = await app(t, { refreshTokens: { idleTtl: 60, absoluteTtl: 3600 } })
  let { refresh_token: token } = await login(a)
  for (let i = 0; i < 3; i++) {
    clock.advance(59)
    const res = await refresh(a, token)
    t.equal(res.statusCode, 200, `used after 59 s (${i + 1})`)
    token = res.json().refresh_token
  }
  clock.advance(60)
  assertInvalidGrant(t, await refresh(a, token), 'unused for 60 s')
})

t.test('absolute lifetime: refreshing never keeps a family past absoluteTtl', async (t) => {
  const clock = fakeClock(t)
  const a = await app(t, { refreshTokens: { idleTtl: 60, absoluteTtl: 150 } })
  let { refresh_token: token } = await login(a)
  for (let i = 0; i < 2; i++) {
    clock.advance(50)
    const res = await refresh(a, token)
    t.equal(res.statusCode, 200)
    token = res.json().refresh_token
  }
  clock.advance(50)
  assertInvalidGrant(t, await refresh(a, token), '150 s after the login')
})

t.test('the defaults: 14 days idle, 90 days absolute', async (t) => {
  const clock = fakeClock(t)
  const a = await app(t)
  let { refresh_token: token } = await login(a)
  for (let day = 13; day <= 13 * 6; day += 13) {
    clock.advance(13 * 24 * 3600)
    const res = await refresh(a, token)
    t.equal(res.statusCode, 200, `day ${day}`)
    token = res.json().refresh_token
  }
  clock.advance(13 * 24 * 3600) // day 91
  assertInvalidGrant(t, await refresh(a, token))
  const fresh = await login(a)
  clock.advance(14 * 24 * 3600)
  assertInvalidGrant(t, await refresh(a, fresh.refresh_token), '14 days unused')
})

t.test('the user is looked up again on every refresh', async (t) => {
  const users = await demoUsers()
  const events: AuthEvent[] = []
  const a = await app(t, { findUser: async (name: string) => users.get(name) ?? null, onAuthEvent: (e) => events.push(e) })

  t.test('a user disabled since the login: invalid_grant, and the family ends', async (t) => {
    const { refresh_token: token } = await login(a)
    users.set('user1', { ...users.get('user1') as UserRecord, disabled: true })
    assertInvalidGrant(t, await refresh(a, token))
    t.match(events.at(-1), { type: 'refresh.failure', username: 'user1', reason: 'disabled' })
    users.set('user1', { ...users.get('user1') as UserRecord, disabled: false })
    assertInvalidGrant(t, await refresh(a, token), 'enabling the user again does not bring the family back')
  })

  t.test('a user removed since the login: invalid_grant', async (t) => {
    const { refresh_token: token } = await login(a)
    const user = users.get('user1') as UserRecord
    users.delete('user1')
    assertInvalidGrant(t, await refresh(a, token))
    t.match(events.at(-1), { type: 'refresh.failure', reason: 'unknown_user' })
    users.set('user1', user)
  })

  t.test('a new account under the same username does not inherit the old sessions', async (t) => {
    const { refresh_token: token } = await login(a)
    users.set('user1', { ...users.get('user1') as UserRecord, id: 'someone-else' })
    assertInvalidGrant(t, await refresh(a, token))
  })
})

t.test('with revocable access tokens, a family ended for a disabled user takes its access tokens along', async (t) => {
  const users = await demoUsers()
  const a = await app(t, { findUser: async (name: string) => users.get(name) ?? null, revocableAccessTokens: true })
  const { access_token: access, refresh_token: token } = await login(a)
  users.set('user1', { ...users.get('user1') as UserRecord, disabled: true })
  assertInvalidGrant(t, await refresh(a, token))
  users.set('user1', { ...users.get('user1') as UserRecord, disabled: false })
  t.equal((await a.inject({ url: '/protected', headers: bearer(access) })).statusCode, 401, 'the access token of the ended family is refused')
  const fresh = await login(a)
  t.equal((await a.inject({ url: '/protected', headers: bearer(fresh.access_token) })).statusCode, 200, 'a new login works')
})

t.test('scope on refresh: narrowed, never widened (RFC 6749 §6)', async (t) => {
  const users = await demoUsers()
  const a = await app(t, { findUser: async (name: string) => users.get(name) ?? null })
  const { refresh_token: r1 } = await login(a, 'admin', 'admin-password')

  const narrow = await refresh(a, r1, { scope: 'profile' })
  t.equal(narrow.statusCode, 200)
  t.notOk('scope' in narrow.json(), 'the scope asked for was granted, so the answer need not repeat it')
  t.same((await a.inject({ url: '/protected', headers: bearer(narrow.json().access_token) })).json().scope, ['profile'])

  // The family keeps the scope of the login: a later refresh may ask for any part of it again.
  const again = await refresh(a, narrow.json().refresh_token, { scope: 'admin' })
  t.equal(again.statusCode, 200)
  let token = again.json().refresh_token as string

  const wider = await refresh(a, token, { scope: 'profile admin superuser' })
  t.equal(wider.statusCode, 400)
  t.equal(wider.json().error, 'invalid_scope')
  const malformed = await refresh(a, token, { scope: 'bad"scope' })
  t.equal(malformed.json().error, 'invalid_scope')
  const still = await refresh(a, token)
  t.equal(still.statusCode, 200, 'a refused scope did not spend the token')
  t.equal(still.json().scope, 'profile admin')
  token = still.json().refresh_token

  // A scope the user has lost since the login is not granted again.
  users.set('admin', { ...users.get('admin') as UserRecord, scopes: ['profile'] })
  const lost = await refresh(a, token, { scope: 'admin' })
  t.equal(lost.json().error, 'invalid_scope')
  const rest = await refresh(a, token)
  t.equal(rest.statusCode, 200)
  t.equal(rest.json().scope, 'profile')
})

t.test('with client authentication, a refresh token is bound to its client (RFC 6749 §10.4)', async (t) => {
  const basic = (id: string, secret: string) => ({ authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64') })
  const events: AuthEvent[] = []
  const a = await app(t, {
    clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }, { id: 'mobile' }],
    onAuthEvent: (e) => events.push(e)
  })
  const res = await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' }, basic('web', 'web-secret'))
  const token = res.json().refresh_token as string

  assertInvalidGrant(t, await refresh(a, token, { client_id: 'mobile' }), 'another client')
  t.match(events.at(-1), { type: 'refresh.failure', reason: 'client_mismatch' })
  t.equal((await refresh(a, token)).statusCode, 401, 'no client at all: invalid_client')
  const ok = await refresh(a, token, {}, basic('web', 'web-secret'))
  t.equal(ok.statusCode, 200, 'the client it was issued to, and the refused attempts did not spend it')
  const claims = JSON.parse(Buffer.from(ok.json().access_token.split('.')[1], 'base64url').toString())
  t.equal(claims.client_id, 'web')

  // Within the retry grace, the replaced token is a retry for its own client only: from another
  // client it is reuse, as it would be without the grace, and the family ends.
  assertInvalidGrant(t, await refresh(a, token, { client_id: 'mobile' }), 'the replaced token from another client')
  t.match(events.at(-1), { type: 'refresh.reuse', reason: 'reuse' })
  assertInvalidGrant(t, await refresh(a, token, {}, basic('web', 'web-secret')), 'the family ended: no retry for its own client either')
  assertInvalidGrant(t, await refresh(a, ok.json().refresh_token, {}, basic('web', 'web-secret')))
})

t.test('regression: a refreshed access token keeps the host\'s claims, computed from the user as they are now', async (t) => {
  let tenant = 'first'
  const a = await app(t, { claims: (user) => ({ tenant: `${tenant}:${user.username}` }) })
  const first = await login(a)
  const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
  t.equal(claimsOf(first.access_token).tenant, 'first:user1')
  tenant = 'second'
  const res = await refresh(a, first.refresh_token)
  t.equal(res.statusCode, 200)
  t.equal(claimsOf(res.json().access_token).tenant, 'second:user1')
})
