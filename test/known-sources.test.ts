import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { createMemoryStore, StoreUnavailableError, type AuthEvent, type UserRecord } from '../lib/index.js'
import { sourceOfAddress } from '../lib/throttle/keys.js'
import { buildApp, countArgon2Verifies, demoUsers, FORM, form } from './helper.js'

/*
 * Known sources (issue 13): the per-username backoff, which stops guessing spread over many
 * addresses, never refuses an address the user logged in from; only that address's own
 * failures can. Spellings of one username share one count, an IPv6 /64 is one source, and a
 * success clears only its own (username, source) count.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const RIGHT = { grant_type: 'password', username: 'user1', password: 'password1' }
const WRONG = { ...RIGHT, password: 'wrong-password' }

function fakeClock (tt: Tap): { advance: (ms: number) => void } {
  let now = Date.now()
  tt.capture(Date, 'now', () => now)
  return { advance: (ms) => { now += ms } }
}

type Injectable = { inject: (options: object) => Promise<LightMyRequestResponse> }
function post (app: Injectable, fields: Record<string, string>, remoteAddress: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/token', remoteAddress, headers: { ...FORM, ...headers }, payload: form(fields) })
}

t.test('refusals by the backoff emit login.throttled and cost no argon2 verification', async (t) => {
  const verifies = countArgon2Verifies(t)
  const events: AuthEvent[] = []
  const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: { freeAttempts: 3 } }, onAuthEvent: (e) => events.push(e) } })
  for (let i = 1; i <= 3; i++) await post(app, WRONG, `203.0.113.${i}`)
  const before = verifies()
  for (let i = 10; i < 30; i++) t.equal((await post(app, WRONG, `203.0.113.${i}`)).statusCode, 429)
  t.equal(verifies(), before, 'no verification for the refused')
  t.equal(events.filter((e) => e.type === 'login.throttled' && e.reason === 'per_username').length, 20)
})

t.test('a known source is known for knownSourceTtl, then it is a new source again', async (t) => {
  const clock = fakeClock(t)
  const app = await buildApp(t, {
    plugin: { rateLimit: false, loginThrottle: { perUsername: { freeAttempts: 2, maxDelay: 3_600_000, timeWindow: 3_600_000 }, knownSourceTtl: 3600 } }
  })
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 200)
  clock.advance(59 * 60_000)
  for (let i = 0; i < 3; i++) await post(app, WRONG, `203.0.113.${i}`)
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 200, 'known within the hour (the login makes it known for another hour)')
  clock.advance(61 * 60_000)
  for (let i = 3; i < 6; i++) await post(app, WRONG, `203.0.113.${i}`)
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 429, 'forgotten an hour after the last login')
})

t.test('a success clears only its own (username, source) count, and not the per-username one', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false } } })
  for (let i = 0; i < 4; i++) t.equal((await post(app, WRONG, '203.0.113.66')).statusCode, 400, 'the attacker\'s failures')
  for (let i = 0; i < 4; i++) await post(app, WRONG, '198.51.100.1')
  t.equal((await post(app, RIGHT, '198.51.100.1')).statusCode, 200, 'the user logs in')
  t.equal((await post(app, WRONG, '203.0.113.66')).statusCode, 400, 'the attacker\'s 5th failure')
  t.equal((await post(app, WRONG, '203.0.113.66')).statusCode, 429, 'the user\'s success did not reset the attacker\'s count')
  for (let i = 0; i < 5; i++) t.equal((await post(app, WRONG, '198.51.100.1')).statusCode, 400, 'the user\'s own count started over')
})

t.test('spellings of one username share one count', async (t) => {
  t.test('case and Unicode compatibility forms are folded by default', async (t) => {
    const seen: string[] = []
    const users = await demoUsers()
    const findUser = async (username: string): Promise<UserRecord | null> => {
      seen.push(username)
      return users.get(username.toLowerCase()) ?? null
    }
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false }, findUser } })
    const spellings = ['user1', 'User1', 'USER1', 'ｕｓｅｒ１', 'uSeR1']
    for (const username of spellings) t.equal((await post(app, { ...WRONG, username }, '203.0.113.5')).statusCode, 400)
    t.equal((await post(app, { ...RIGHT, username: 'UsEr1' }, '203.0.113.5')).statusCode, 429, 'a sixth spelling is refused')
    t.same(seen, spellings.map((s) => s.normalize('NFC')), 'findUser gets the username as sent')
  })

  t.test('caseSensitiveUsernames: true counts case apart, still folding compatibility forms', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false, caseSensitiveUsernames: true } } })
    for (let i = 0; i < 5; i++) await post(app, { ...WRONG, username: 'USER1' }, '203.0.113.5')
    t.equal((await post(app, { ...WRONG, username: 'ＵＳＥＲ１' }, '203.0.113.5')).statusCode, 429, 'the fullwidth form is the same name')
    t.equal((await post(app, RIGHT, '203.0.113.5')).statusCode, 200, 'user1 is another name')
  })

  t.test('a dotted capital I folds to the same key however it is written', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false, perUsernameAndIp: { max: 1 } } } })
    await post(app, { ...WRONG, username: 'İ' }, '203.0.113.5')
    t.equal((await post(app, { ...WRONG, username: 'i\u0307' }, '203.0.113.5')).statusCode, 429)
  })
})

t.test('addresses: an IPv6 /64 is one source, an IPv4-mapped address is its IPv4 address', async (t) => {
  t.test('rotating through one /64 does not buy fresh allowances', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false } } })
    for (let i = 1; i <= 5; i++) t.equal((await post(app, WRONG, `2001:db8:0:7::${i.toString(16)}`)).statusCode, 400)
    t.equal((await post(app, WRONG, '2001:0db8:0000:0007:ffff:1:2:3')).statusCode, 429, 'another address of the /64, written in full')
    t.equal((await post(app, WRONG, '2001:db8:0:8::1')).statusCode, 400, 'the next /64 is another source')
  })

  t.test('a known /64 stays known across its addresses; the per-IP limit counts per /64 too', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: { max: 2, timeWindow: 60_000 }, loginThrottle: { perUsername: { freeAttempts: 1 } } } })
    t.equal((await post(app, RIGHT, '2001:db8:a:b:1::1')).statusCode, 200)
    await post(app, WRONG, '2001:db8:ffff::1')
    t.equal((await post(app, RIGHT, '2001:db8:ffff::2')).statusCode, 429, 'under backoff for new sources')
    t.equal((await post(app, RIGHT, '2001:db8:a:b:9:9:9:9')).statusCode, 200, 'known: another address of the /64')
    t.equal((await post(app, RIGHT, '2001:db8:a:b::5')).statusCode, 429, 'the per-IP limit (2): the 3rd request from this /64')
  })

  t.test('::ffff:192.0.2.1 and 192.0.2.1 are one source', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false } } })
    for (let i = 0; i < 5; i++) await post(app, WRONG, i % 2 === 0 ? '192.0.2.1' : '::ffff:192.0.2.1')
    t.equal((await post(app, WRONG, '::FFFF:192.0.2.1')).statusCode, 429)
  })

  t.test('an IPv4 client behind a proxy that writes the hex form is its IPv4 address, not one bucket for all', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false } }, server: { trustProxy: true } })
    for (let i = 0; i < 5; i++) await post(app, WRONG, '127.0.0.1', { 'x-forwarded-for': '::ffff:a00:1' })
    t.equal((await post(app, WRONG, '127.0.0.1', { 'x-forwarded-for': '10.0.0.1' })).statusCode, 429, '::ffff:a00:1 is 10.0.0.1')
    t.equal((await post(app, WRONG, '127.0.0.1', { 'x-forwarded-for': '::ffff:a00:2' })).statusCode, 400, '::ffff:a00:2 is another client')
    t.equal((await post(app, WRONG, '127.0.0.1', { 'x-forwarded-for': '::1' })).statusCode, 400, 'and ::1 is neither')
  })

  t.test('a forwarded address that is not an IP address counts as the socket address', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false } }, server: { trustProxy: true } })
    for (let i = 0; i < 5; i++) {
      t.equal((await post(app, WRONG, '198.51.100.4', { 'x-forwarded-for': `junk-${i}-${'x'.repeat(15_000)}` })).statusCode, 400)
    }
    t.equal((await post(app, WRONG, '198.51.100.4', { 'x-forwarded-for': 'not an address' })).statusCode, 429, 'all five counted against 198.51.100.4')
    t.equal((await post(app, WRONG, '198.51.100.4', { 'x-forwarded-for': '192.0.2.50' })).statusCode, 400, 'a real forwarded address is its own source')
  })

  t.test('a socket address that is not an IP address either is one source of its own', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false } } })
    for (let i = 0; i < 5; i++) await post(app, WRONG, `not-an-address-${i}`)
    t.equal((await post(app, WRONG, 'still-not-an-address')).statusCode, 429)
  })
})

t.test('sourceOfAddress: how addresses become sources', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['192.0.2.1', '192.0.2.1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::FFFF:192.0.2.1', '192.0.2.1'],
    ['::ffff:c000:201', '192.0.2.1'],
    ['::ffff:a00:1', '10.0.0.1'],
    ['0:0:0:0:0:ffff:10.0.0.1', '10.0.0.1'],
    ['0000:0000:0000:0000:0000:FFFF:0A00:0001', '10.0.0.1'],
    ['::ffff:0:0', '0.0.0.0'],
    ['::ffff:ffff:ffff', '255.255.255.255'],
    ['::1:ffff:a00:1', '0:0:0:0::/64'],
    ['::a00:1', '0:0:0:0::/64'],
    ['2001:db8:0:7::1', '2001:db8:0:7::/64'],
    ['2001:0DB8:0000:0007:ffff:1:2:3', '2001:db8:0:7::/64'],
    ['2001:db8::', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['1:2:3:4:5:6:192.0.2.1', '1:2:3:4::/64'],
    ['not an address', undefined],
    ['', undefined]
  ]
  for (const [address, source] of cases) t.equal(sourceOfAddress(address), source, address)
})

t.test('a store that cannot be reached while the source is remembered: 503, never a 500', async (t) => {
  const store = createMemoryStore()
  const failing = { ...store, rememberSource: async () => { throw new StoreUnavailableError() } }
  const app = await buildApp(t, { plugin: { rateLimit: false, store: failing } })
  const res = await post(app, RIGHT, '198.51.100.1')
  t.equal(res.statusCode, 503)
  t.equal(res.json().error, 'temporarily_unavailable')
})
