import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { createHmac } from 'node:crypto'
import { createPostgresStore, createRedisStore, type AuthEvent, type AuthStore } from '../lib/index.js'
import { accountKey } from '../lib/throttle/keys.js'
import { buildApp, FORM, form, NO_POSTGRES, NO_REDIS, postgresPool, redisClient, testPrefix, testSchema, type LooseOptions } from './helper.js'

/*
 * Device cookies (issue 17, OWASP "Slow down online guessing attacks with device cookies"): a
 * browser that logged in gets a signed cookie naming the account; presenting it makes the
 * browser a known source for the per-username backoff, as a known address is, so the owner
 * keeps access from a new network while guessing on the account runs elsewhere. A cookie that
 * fails too often is locked out; a forged one, or another account's, is no device at all.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const PAGE = { 'x-token-delivery': 'cookie', origin: 'http://localhost:80' }
const RIGHT = { grant_type: 'password', username: 'user1', password: 'password1' }
const WRONG = { ...RIGHT, password: 'wrong-password' }
const DEVICE = '__Host-device'
const SECRET_BYTES = Buffer.from('4f1c9a7e2b8d3f6a0c5e9b1d7f3a8c2e6b0d4f9a')

async function build (t: Tap, plugin: LooseOptions = {}, events: AuthEvent[] = []): Promise<FastifyInstance> {
  return await buildApp(t, {
    plugin: {
      rateLimit: false,
      refreshTokens: true,
      browserSessions: { deviceSecret: SECRET_BYTES, deviceLockout: { max: 3, timeWindow: 600_000 } },
      loginThrottle: { perUsername: { freeAttempts: 3, maxDelay: 3_600_000 } },
      onAuthEvent: (e) => events.push(e),
      ...plugin
    }
  })
}

function post (app: FastifyInstance, fields: Record<string, string>, remoteAddress: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/token', remoteAddress, headers: { ...FORM, ...headers }, payload: form(fields) })
}

/** The device cookie an answer sets, as the browser sends it back (`name=value`), with its attributes. */
function deviceCookie (res: LightMyRequestResponse): { pair: string, value: string, attributes: string[] } | undefined {
  const lines = res.headers['set-cookie']
  const line = (Array.isArray(lines) ? lines : lines === undefined ? [] : [lines]).find((l) => l.startsWith(`${DEVICE}=`))
  if (line === undefined) return undefined
  const [pair, ...attributes] = line.split(';').map((part) => part.trim()) as [string, ...string[]]
  return { pair, value: decodeURIComponent(pair.slice(DEVICE.length + 1)), attributes }
}

/** A browser login: the page's headers, and the device cookie when it has one. */
function browser (cookie?: string): Record<string, string> {
  return cookie === undefined ? PAGE : { ...PAGE, cookie }
}

/** Makes user1's per-username backoff refuse unknown sources: guessing from addresses never seen. */
async function attack (t: Tap, app: FastifyInstance, from = 10): Promise<void> {
  for (let i = from; i < from + 3; i++) await post(app, WRONG, `203.0.113.${i}`)
  t.equal((await post(app, RIGHT, '192.0.2.200')).statusCode, 429, 'the account is under attack: an unknown source is refused')
}

t.test('a browser login sets a signed, httpOnly device cookie naming the account', async (t) => {
  const app = await build(t)
  const res = await post(app, RIGHT, '198.51.100.1', PAGE)
  t.equal(res.statusCode, 200)
  const device = deviceCookie(res)
  if (device === undefined) throw new Error('no device cookie')
  t.same(device.attributes.map((a) => a.toLowerCase()).sort(), ['httponly', 'max-age=2592000', 'path=/', 'samesite=strict', 'secure'], 'for knownSourceTtl, like the refresh cookie otherwise')
  const [account, id, signature] = device.value.split('.')
  t.equal(account, accountKey('user1', false), 'names the account by its throttle key, not the username')
  t.match(id, /^[\w-]{22}$/, '128 random bits')
  const expected = createHmac('sha256', SECRET_BYTES).update(`${account as string}.${id as string}`).digest('base64').replace(/=/g, '')
  t.equal(signature, expected, 'HMAC-SHA256 with deviceSecret')
  t.notMatch(res.body, /device/)

  t.equal(deviceCookie(await post(app, RIGHT, '198.51.100.1')), undefined, 'an API client\'s login gets none')
  t.equal(deviceCookie(await post(app, WRONG, '198.51.100.1', PAGE)), undefined, 'a failed login gets none')
  const again = deviceCookie(await post(app, RIGHT, '198.51.100.1', browser(device.pair)))
  t.equal(again?.value, device.value, 'a login with the cookie renews the same device')
})

t.test('the owner keeps access from a new network while the account is under attack', async (t) => {
  const events: AuthEvent[] = []
  const app = await build(t, {}, events)
  const device = deviceCookie(await post(app, RIGHT, '198.51.100.1', PAGE))?.pair as string
  await attack(t, app)
  const res = await post(app, RIGHT, '192.0.2.77', browser(device))
  t.equal(res.statusCode, 200, 'from an address never seen, with the device cookie')
  t.ok(deviceCookie(res), 'the cookie is renewed')
  t.equal((await post(app, RIGHT, '192.0.2.78', PAGE)).statusCode, 429, 'the same browser without its cookie is refused')
  t.equal((await post(app, RIGHT, '192.0.2.79', { cookie: device })).statusCode, 429, 'a device cookie counts on browser logins only (the signal header)')
  t.ok(events.some((e) => e.type === 'login.throttled' && e.reason === 'per_username'))
})

t.test('a forged device cookie, or another account\'s, does not get past the throttle', async (t) => {
  const app = await build(t)
  const user1 = deviceCookie(await post(app, RIGHT, '198.51.100.1', PAGE)) as { pair: string, value: string }
  const admin = deviceCookie(await post(app, { ...RIGHT, username: 'admin', password: 'admin-password' }, '198.51.100.2', PAGE)) as { pair: string, value: string }
  await attack(t, app)
  const [account, id] = user1.value.split('.') as [string, string]
  const otherSecret = createHmac('sha256', 'another-secret-of-32-bytes-or-more-000').update(`${account}.${id}`).digest('base64').replace(/=/g, '')
  const forged: Array<[string, string]> = [
    ['admin\'s device cookie, presented for user1', admin.pair],
    ['signed with another secret', `${DEVICE}=${encodeURIComponent(`${account}.${id}.${otherSecret}`)}`],
    ['unsigned', `${DEVICE}=${account}.${id}`],
    ['another device id under the signature', `${DEVICE}=${encodeURIComponent(`${account}.${'A'.repeat(22)}.${user1.value.split('.')[2] as string}`)}`],
    ['garbage', `${DEVICE}=%%%`],
    ['the cookie twice', `${user1.pair}; ${user1.pair}`]
  ]
  for (const [name, cookie] of forged) {
    const res = await post(app, RIGHT, '192.0.2.50', browser(cookie))
    t.equal(res.statusCode, 429, `${name}: an unknown source, never an error`)
  }
  t.equal((await post(app, RIGHT, '192.0.2.51', browser(user1.pair))).statusCode, 200, 'the real one works')
})

t.test('a device cookie that fails repeatedly is locked out', async (t) => {
  const clock = (() => {
    let now = Date.now()
    t.capture(Date, 'now', () => now)
    return { advance: (ms: number) => { now += ms } }
  })()
  const app = await build(t)
  const device = deviceCookie(await post(app, RIGHT, '198.51.100.1', PAGE))?.pair as string
  await attack(t, app)
  // A stolen device cookie buys its thief deviceLockout.max guesses, from any address.
  for (let i = 0; i < 2; i++) t.equal((await post(app, WRONG, `192.0.2.${i}`, browser(device))).statusCode, 400, 'a failure with the cookie')
  t.equal((await post(app, RIGHT, '192.0.2.10', browser(device))).statusCode, 200, 'a success clears the cookie\'s failures')
  for (let i = 0; i < 3; i++) t.equal((await post(app, WRONG, `192.0.2.${20 + i}`, browser(device))).statusCode, 400, `failure ${i + 1} of 3`)
  t.equal((await post(app, WRONG, '192.0.2.30', browser(device))).statusCode, 429, 'locked out: an unknown source again')
  t.equal((await post(app, RIGHT, '192.0.2.31', browser(device))).statusCode, 429, 'even with the right password')
  t.equal((await post(app, RIGHT, '198.51.100.1', PAGE)).statusCode, 200, 'the owner\'s known address still works')
  clock.advance(600_001)
  t.equal((await post(app, RIGHT, '192.0.2.32', browser(device))).statusCode, 200, 'known again once the lockout window ends')
})

t.test('a throttled or cancelled attempt with a device cookie is not counted against it', async (t) => {
  const app = await build(t, { loginThrottle: { perUsername: { freeAttempts: 3 }, perUsernameAndIp: { max: 1, timeWindow: 600_000 } } })
  const device = deviceCookie(await post(app, RIGHT, '198.51.100.1', PAGE))?.pair as string
  t.equal((await post(app, WRONG, '192.0.2.1', browser(device))).statusCode, 400)
  // The (username, address) window refuses these before any password is checked.
  for (let i = 0; i < 5; i++) t.equal((await post(app, WRONG, '192.0.2.1', browser(device))).statusCode, 429, 'per (username, address)')
  t.equal((await post(app, WRONG, '192.0.2.2', browser(device))).statusCode, 400, 'the cookie\'s second failure: the refusals were not counted')
  t.equal((await post(app, WRONG, '192.0.2.3', browser(device))).statusCode, 400, 'its third')
  await attack(t, app)
  t.equal((await post(app, RIGHT, '192.0.2.4', browser(device))).statusCode, 429, 'the fourth attempt: locked out')
})

t.test('device cookies are off with deviceCookie: false, and without the per-username limit', async (t) => {
  for (const plugin of [
    { browserSessions: { deviceCookie: false } },
    { browserSessions: true, loginThrottle: { perUsername: false } },
    { browserSessions: true, loginThrottle: false }
  ] as LooseOptions[]) {
    const app = await build(t, plugin)
    const res = await post(app, RIGHT, '198.51.100.1', PAGE)
    t.equal(res.statusCode, 200)
    t.equal(deviceCookie(res), undefined, JSON.stringify(plugin))
  }
})

/** The known-device scenario against a real store. */
async function scenario (t: Tap, store: AuthStore): Promise<void> {
  const app = await build(t, { store })
  const device = deviceCookie(await post(app, RIGHT, '198.51.100.1', PAGE))?.pair as string
  await attack(t, app)
  t.equal((await post(app, RIGHT, '192.0.2.77', browser(device))).statusCode, 200, 'the device is known')
  for (let i = 0; i < 3; i++) await post(app, WRONG, `192.0.2.${100 + i}`, browser(device))
  t.equal((await post(app, RIGHT, '192.0.2.78', browser(device))).statusCode, 429, 'and locked out after 3 failures')
}

t.test('with the Redis store', { skip: NO_REDIS }, async (t) => {
  const prefix = testPrefix()
  await scenario(t, createRedisStore({ client: await redisClient(t, prefix), prefix }))
})

t.test('with the PostgreSQL store', { skip: NO_POSTGRES }, async (t) => {
  const pool = postgresPool(t)
  await scenario(t, createPostgresStore({ pool, schema: await testSchema(t, pool) }))
})
