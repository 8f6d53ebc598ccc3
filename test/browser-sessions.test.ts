import t from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import cookie from '@fastify/cookie'
import cors from '@fastify/cors'
import tokenAuth, { type AuthEvent } from '../lib/index.js'
import { crossSiteRequest } from '../lib/errors.js'
import { buildApp, CHEAP, cheapHash, demoUsers, FORM, form, SECRET, type LooseOptions } from './helper.js'

/*
 * Browser sessions (issue 17): a page that sends `x-token-delivery: cookie` gets the refresh token
 * in an httpOnly cookie, not in the JSON body; the refresh grant and /revoke read the cookie when
 * the body has no token, behind a CSRF check; every other client is served as before.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

// What a page on the server's own origin sends (light-my-request's host is localhost:80).
const PAGE = { 'x-token-delivery': 'cookie', origin: 'http://localhost:80' }
const LOGIN = { grant_type: 'password', username: 'user1', password: 'password1' }
const REFRESH = { grant_type: 'refresh_token' }
const COOKIE = '__Host-refresh-token'

function fakeClock (tt: Tap): { advance: (ms: number) => void } {
  let now = Date.now()
  tt.capture(Date, 'now', () => now)
  return { advance: (ms) => { now += ms } }
}

async function build (t: Tap, plugin: LooseOptions = {}, events: AuthEvent[] = []): Promise<FastifyInstance> {
  return await buildApp(t, {
    plugin: { rateLimit: false, refreshTokens: { absoluteTtl: 3600, retryGrace: 10 }, browserSessions: { deviceCookie: false }, onAuthEvent: (e) => events.push(e), ...plugin }
  })
}

function post (app: FastifyInstance, url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url, headers: { ...FORM, ...headers }, payload: form(fields) })
}

/** Every Set-Cookie line of an answer. */
function setCookies (res: LightMyRequestResponse): string[] {
  const header = res.headers['set-cookie']
  return header === undefined ? [] : Array.isArray(header) ? header : [header]
}

/** The refresh cookie an answer sets: its value and attributes. */
function refreshCookie (res: LightMyRequestResponse): { value: string, attributes: string[] } {
  const line = setCookies(res).find((c) => c.startsWith(`${COOKIE}=`))
  if (line === undefined) throw new Error(`no ${COOKIE} in ${JSON.stringify(res.headers['set-cookie'])}`)
  const [pair, ...attributes] = line.split(';').map((part) => part.trim())
  return { value: decodeURIComponent((pair as string).slice(COOKIE.length + 1)), attributes }
}

const withCookie = (value: string, headers: Record<string, string> = PAGE): Record<string, string> => ({ ...headers, cookie: `${COOKIE}=${encodeURIComponent(value)}` })

t.test('a page that asks for the cookie gets the refresh token there, and never in the body', async (t) => {
  const app = await build(t)
  const login = await post(app, '/token', LOGIN, PAGE)
  t.equal(login.statusCode, 200)
  const body = login.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type'], 'no refresh_token in the JSON')
  t.notMatch(login.body, /refresh_token/)
  const { value, attributes } = refreshCookie(login)
  t.match(value, /^[\w-]{22}\.[\w-]{22}\.[\w-]{43}$/, 'a refresh token')
  t.same(attributes.map((a) => a.toLowerCase()).sort(), ['httponly', 'max-age=3600', 'path=/', 'samesite=strict', 'secure'], 'HttpOnly, Secure, SameSite=Strict, Path=/, no Domain')
  t.equal(login.headers['cache-control'], 'no-store')

  const refreshed = await post(app, '/token', REFRESH, withCookie(value))
  t.equal(refreshed.statusCode, 200, 'the refresh grant reads the cookie when the body has none')
  t.notOk('refresh_token' in refreshed.json())
  t.not(refreshCookie(refreshed).value, value, 'rotated: a new token in the cookie')
  const me = await app.inject({ url: '/protected', headers: { authorization: `Bearer ${refreshed.json().access_token as string}` } })
  t.same(me.json(), { sub: 'user1', scope: ['profile'] })
})

t.test('Max-Age is the family\'s remaining absolute lifetime, rotation or not', async (t) => {
  const clock = fakeClock(t)
  const app = await build(t)
  const login = await post(app, '/token', LOGIN, PAGE)
  clock.advance(1000_500)
  const refreshed = await post(app, '/token', REFRESH, withCookie(refreshCookie(login).value))
  t.ok(refreshCookie(refreshed).attributes.includes('Max-Age=2600'), 'rounded up: 2599.5 s left')
  clock.advance(2600_000)
  const expired = await post(app, '/token', REFRESH, withCookie(refreshCookie(refreshed).value))
  t.equal(expired.statusCode, 400, 'an expired cookie')
  t.equal(expired.json().error, 'invalid_grant')
})

t.test('a client that sends no signal gets the refresh token in the body, as before', async (t) => {
  const app = await build(t)
  const login = await post(app, '/token', LOGIN)
  t.type(login.json().refresh_token, 'string')
  t.same(setCookies(login), [], 'no cookie')
  // A cookie it happens to carry changes nothing: the body's token is the one used.
  const refreshed = await post(app, '/token', { ...REFRESH, refresh_token: login.json().refresh_token }, { cookie: `${COOKIE}=not-a-token; ${COOKIE}=twice` })
  t.equal(refreshed.statusCode, 200)
  t.type(refreshed.json().refresh_token, 'string')
  t.same(setCookies(refreshed), [])
  const other = await post(app, '/token', { grant_type: 'client_credentials' }, PAGE)
  t.equal(other.statusCode, 400, 'other grants are answered as before')
  t.same(setCookies(other), [])
})

t.test('browserSessions: false is off, and a page\'s grant without a refresh token sets no cookie', async (t) => {
  const off = await build(t, { browserSessions: false })
  const login = await post(off, '/token', LOGIN, PAGE)
  t.type(login.json().refresh_token, 'string', 'off: the body, whatever the page asks')
  t.same(setCookies(login), [])

  const app = await build(t, { clients: [{ id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['client_credentials'] }], publicClient: true })
  const basic = { authorization: `Basic ${Buffer.from('svc:svc-secret').toString('base64')}` }
  const service = await post(app, '/token', { grant_type: 'client_credentials' }, { ...PAGE, ...basic })
  t.equal(service.statusCode, 200)
  t.same(setCookies(service), [], 'no refresh token, no cookie')
})

t.test('cookie and body tokens both present: the body wins', async (t) => {
  const app = await build(t)
  const first = refreshCookie(await post(app, '/token', LOGIN, PAGE)).value
  const second = refreshCookie(await post(app, '/token', LOGIN, PAGE)).value
  const res = await post(app, '/token', { ...REFRESH, refresh_token: second }, withCookie(first))
  t.equal(res.statusCode, 200)
  // The body's family was rotated, the cookie's was not: its token still works, once.
  t.equal((await post(app, '/token', REFRESH, withCookie(first))).statusCode, 200, 'the cookie\'s family untouched')
  t.equal((await post(app, '/token', REFRESH, withCookie(refreshCookie(res).value))).statusCode, 200, 'the answer went to the cookie')
  t.equal((await post(app, '/token', { ...REFRESH, refresh_token: second }, { cookie: `${COOKIE}=${first}` })).json().error, 'invalid_grant',
    'without the signal too: the body\'s replaced token is reuse, whatever the cookie holds')
})

t.test('rotation, the retry grace and reuse detection work on the cookie as on the body', async (t) => {
  const events: AuthEvent[] = []
  const clock = fakeClock(t)
  const app = await build(t, {}, events)
  const r1 = refreshCookie(await post(app, '/token', LOGIN, PAGE)).value
  const second = await post(app, '/token', REFRESH, withCookie(r1))
  const r2 = refreshCookie(second).value
  const retried = await post(app, '/token', REFRESH, withCookie(r1))
  t.equal(retried.statusCode, 200, 'the replaced token within the grace: a retry')
  const r3 = refreshCookie(retried).value
  t.equal((await post(app, '/token', REFRESH, withCookie(r2))).json().error, 'invalid_grant', 'the retired successor: reuse')
  t.ok(events.some((e) => e.type === 'refresh.reuse'))
  t.equal((await post(app, '/token', REFRESH, withCookie(r3))).json().error, 'invalid_grant', 'the family is dead')
  const access = second.json().access_token as string
  t.equal((await app.inject({ url: '/protected', headers: { authorization: `Bearer ${access}` } })).statusCode, 200, 'not revocable: still valid')

  const s1 = refreshCookie(await post(app, '/token', LOGIN, PAGE)).value
  const s2 = refreshCookie(await post(app, '/token', REFRESH, withCookie(s1))).value
  clock.advance(11_000)
  t.equal((await post(app, '/token', REFRESH, withCookie(s1))).statusCode, 400, 'a rotated cookie token after the grace: reuse')
  t.equal((await post(app, '/token', REFRESH, withCookie(s2))).statusCode, 400, 'kills the family: the current token too')
})

t.test('CSRF: a request that relies on the cookie must prove it comes from the app', async (t) => {
  const events: AuthEvent[] = []
  const app = await build(t, { browserSessions: { deviceCookie: false, origins: ['https://app.example.com'] } }, events)
  const token = refreshCookie(await post(app, '/token', LOGIN, PAGE)).value
  const cases: Array<[string, Record<string, string>, string]> = [
    ['a cross-site form POST (no header)', { cookie: `${COOKIE}=${token}`, origin: 'https://evil.example' }, 'no_header'],
    ['the cookie alone', { cookie: `${COOKIE}=${token}` }, 'no_header'],
    ['another site\'s Origin', withCookie(token, { ...PAGE, origin: 'https://evil.example' }), 'origin'],
    ['Origin: null', withCookie(token, { ...PAGE, origin: 'null' }), 'origin'],
    ['Sec-Fetch-Site: cross-site without Origin', withCookie(token, { 'x-token-delivery': 'cookie', 'sec-fetch-site': 'cross-site' }), 'fetch_site'],
    ['Sec-Fetch-Site: same-site without Origin', withCookie(token, { 'x-token-delivery': 'cookie', 'sec-fetch-site': 'same-site' }), 'fetch_site'],
    ['neither Origin nor Sec-Fetch-Site', withCookie(token, { 'x-token-delivery': 'cookie' }), 'no_origin'],
    ['the header with another value', { cookie: `${COOKIE}=${token}`, 'x-token-delivery': 'body', origin: 'http://localhost:80' }, 'no_header']
  ]
  for (const [name, headers, reason] of cases) {
    for (const [url, fields] of [['/token', REFRESH], ['/revoke', {}]] as const) {
      events.length = 0
      const res = await post(app, url, fields, headers)
      t.equal(res.statusCode, 403, `${url}, ${name}: 403`)
      t.equal(res.json().error, 'invalid_request', 'an OAuth2-shaped error')
      t.type(res.json().error_description, 'string')
      t.same(setCookies(res), [], 'no cookie set or cleared')
      t.same(events.map((e) => [e.type, e.reason]), [['csrf.refused', reason]], `event csrf.refused ${reason}`)
    }
  }
  // A login from another site must not plant that site's session in the browser either.
  t.equal((await post(app, '/token', LOGIN, { ...PAGE, origin: 'https://evil.example' })).statusCode, 403, 'login CSRF')

  // What passes: the server's own origin (checked above), a listed one, or Fetch Metadata.
  t.equal((await post(app, '/token', REFRESH, withCookie(token, { ...PAGE, origin: 'https://app.example.com' }))).statusCode, 200, 'a listed origin')
  const same = await post(app, '/token', LOGIN, { 'x-token-delivery': 'cookie', 'sec-fetch-site': 'same-origin' })
  t.equal(same.statusCode, 200, 'no Origin, but Sec-Fetch-Site: same-origin')
  t.notOk('refresh_token' in same.json())
  // Body tokens are unaffected: an API client from anywhere.
  const api = await post(app, '/token', LOGIN, { origin: 'https://evil.example' })
  t.equal(api.statusCode, 200)
  t.equal((await post(app, '/token', { ...REFRESH, refresh_token: api.json().refresh_token }, { origin: 'https://evil.example', cookie: `${COOKIE}=${token}` })).statusCode, 200)
  t.equal(crossSiteRequest('x').code, 'FST_TOKEN_AUTH_CROSS_SITE_REQUEST', 'the code the error handler sees')
  t.equal(crossSiteRequest('x').statusCode, 403)
})

t.test('the Origin check follows the server\'s own protocol and host', async (t) => {
  const app = await build(t, {}, [])
  const res = await post(app, '/token', LOGIN, { 'x-token-delivery': 'cookie', host: 'auth.example.com', origin: 'http://auth.example.com' })
  t.equal(res.statusCode, 200)
  t.equal((await post(app, '/token', LOGIN, { 'x-token-delivery': 'cookie', host: 'auth.example.com', origin: 'https://auth.example.com' })).statusCode, 403, 'another scheme is another origin')
})

t.test('bad cookies: malformed, forged, expired or repeated', async (t) => {
  const clock = fakeClock(t)
  const app = await build(t)
  const token = refreshCookie(await post(app, '/token', LOGIN, PAGE)).value
  const [userKey, familyId] = token.split('.')
  for (const [name, value] of [
    ['garbage', 'not-a-token'],
    ['bad percent-encoding', '%zz%'],
    ['a JWT', 'eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl'],
    ['forged: the right shape, another secret part', `${userKey as string}.${familyId as string}.${'A'.repeat(43)}`],
    ['very long', 'x'.repeat(3000)]
  ]) {
    const res = await app.inject({ method: 'POST', url: '/token', headers: { ...FORM, ...PAGE, cookie: `${COOKIE}=${value as string}` }, payload: form(REFRESH) })
    t.equal(res.statusCode, 400, `${name as string}: 400, never a 500`)
    t.equal(res.json().error, 'invalid_grant')
  }
  const repeated = await post(app, '/token', REFRESH, { ...PAGE, cookie: `${COOKIE}=${token}; other=1; ${COOKIE}=${token}` })
  t.equal(repeated.statusCode, 400, 'the cookie twice (one may be a sibling domain\'s)')
  t.equal(repeated.json().error, 'invalid_request')
  t.equal((await post(app, '/token', REFRESH, { ...PAGE, cookie: `${COOKIE}=` })).json().error, 'invalid_request', 'an empty cookie is none: the token is missing')
  t.equal((await post(app, '/token', REFRESH, { ...PAGE, cookie: `x${COOKIE}=${token}` })).json().error, 'invalid_request', 'only our cookie\'s name counts')
  clock.advance(3601_000)
  const expired = await post(app, '/token', REFRESH, withCookie(token))
  t.equal(expired.statusCode, 400, 'expired')
  t.equal(expired.json().error, 'invalid_grant')
})

t.test('logout: /revoke with the cookie ends the family and clears the cookie', async (t) => {
  const events: AuthEvent[] = []
  const app = await build(t, { revocableAccessTokens: true }, events)
  const login = await post(app, '/token', LOGIN, PAGE)
  const token = refreshCookie(login).value
  const revoked = await post(app, '/revoke', {}, withCookie(token))
  t.equal(revoked.statusCode, 200)
  t.same(revoked.json(), {})
  const cleared = refreshCookie(revoked)
  t.equal(cleared.value, '')
  t.ok(cleared.attributes.includes('Max-Age=0'), 'Max-Age=0')
  t.ok(cleared.attributes.includes('Secure') && cleared.attributes.includes('HttpOnly') && cleared.attributes.includes('Path=/'), 'the attributes a __Host- cookie needs to be replaced')
  t.ok(events.some((e) => e.type === 'token.revoked' && e.reason === 'refresh_token'))
  t.equal((await post(app, '/token', REFRESH, withCookie(token))).json().error, 'invalid_grant', 'the family ended')

  const none = await post(app, '/revoke', {}, PAGE)
  t.equal(none.statusCode, 200, 'a browser with no session left: 200, as for an unknown token (RFC 7009 §2.2)')
  t.ok(refreshCookie(none).attributes.includes('Max-Age=0'))
  const stale = await post(app, '/revoke', {}, withCookie(token))
  t.equal(stale.statusCode, 200, 'an ended session\'s cookie')
  t.equal(refreshCookie(stale).value, '')

  // A page revoking a token of its body (its access token, say) keeps its session.
  const second = await post(app, '/token', LOGIN, PAGE)
  const access = await post(app, '/revoke', { token: second.json().access_token }, withCookie(refreshCookie(second).value))
  t.equal(access.statusCode, 200)
  t.same(setCookies(access), [], 'the cookie stays')
  t.equal((await post(app, '/token', REFRESH, withCookie(refreshCookie(second).value))).statusCode, 200)

  // API clients: as before.
  t.equal((await post(app, '/revoke', {})).json().error, 'invalid_request', 'no token, no signal: invalid_request')
})

t.test('a new login in the browser ends the session whose cookie it replaces, and only after it succeeded', async (t) => {
  const events: AuthEvent[] = []
  const app = await build(t, { revocableAccessTokens: true }, events)
  const first = await post(app, '/token', LOGIN, PAGE)
  const old = refreshCookie(first).value

  // A failed login, or one that never reaches a grant, ends nothing.
  t.equal((await post(app, '/token', { ...LOGIN, password: 'wrong' }, withCookie(old))).statusCode, 400)
  t.equal((await post(app, '/token', { grant_type: 'nope' }, withCookie(old))).statusCode, 400)
  // An API client's login (no signal) does not read the cookie at all.
  t.equal((await post(app, '/token', LOGIN, { cookie: `${COOKIE}=${old}` })).statusCode, 200)
  t.notOk(events.some((e) => e.reason === 'replaced_by_login'))

  const second = await post(app, '/token', { grant_type: 'password', username: 'admin', password: 'admin-password' }, withCookie(old))
  t.equal(second.statusCode, 200)
  t.not(refreshCookie(second).value, old, 'the cookie now holds the new session')
  t.equal((await post(app, '/token', { ...REFRESH, refresh_token: old })).json().error, 'invalid_grant', 'the replaced session ended')
  t.equal((await app.inject({ url: '/protected', headers: { authorization: `Bearer ${first.json().access_token as string}` } })).statusCode, 401,
    'and its access token with it, as at a logout')
  t.match(events.filter((e) => e.type === 'token.revoked'), [{ username: 'user1', clientId: 'public', reason: 'replaced_by_login' }])
  t.equal((await post(app, '/token', REFRESH, withCookie(refreshCookie(second).value))).statusCode, 200, 'the new session lives')

  // The cookie twice: which one is ours cannot be told, so neither ends; the login goes on.
  const third = refreshCookie(await post(app, '/token', LOGIN, PAGE)).value
  const twice = await post(app, '/token', LOGIN, { ...PAGE, cookie: `${COOKIE}=${third}; ${COOKIE}=${third}` })
  t.equal(twice.statusCode, 200)
  t.equal((await post(app, '/token', REFRESH, withCookie(third))).statusCode, 200, 'nothing ended')
})

t.test('a login through another client leaves the cookie\'s session of another client alone', async (t) => {
  const app = await build(t, { clients: [{ id: 'web' }, { id: 'other' }] })
  const web = refreshCookie(await post(app, '/token', { ...LOGIN, client_id: 'web' }, PAGE)).value
  t.equal((await post(app, '/token', { ...LOGIN, client_id: 'other' }, withCookie(web))).statusCode, 200)
  t.equal((await post(app, '/token', { ...REFRESH, client_id: 'web' }, withCookie(web))).statusCode, 200, 'web\'s session still refreshes')
})

t.test('a host that registered @fastify/cookie lends it, and its defaults never reach these cookies', async (t) => {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cookie, { hook: 'onRequest', parseOptions: { domain: 'example.com', sameSite: 'none' } })
  await app.register(tokenAuth, {
    secret: SECRET, findUser: (u: string) => users.get(u) ?? null, password: CHEAP, rateLimit: false, refreshTokens: true, browserSessions: true
  })
  app.get('/set', async (_request, reply) => reply.setCookie('theirs', '1').send({ ok: true }))
  const login = await post(app, '/token', LOGIN, PAGE)
  t.equal(login.statusCode, 200)
  const lines = setCookies(login)
  t.equal(lines.length, 2, `the refresh cookie and the device cookie: ${JSON.stringify(lines)}`)
  for (const line of lines) t.notMatch(line, /domain|samesite=none/i, 'no host default')
  t.match(setCookies(await app.inject('/set'))[0], /Domain=example\.com/i, 'the host\'s own cookies keep theirs')
})

t.test('browserSessions options are checked at registration', async (t) => {
  const cases: Array<[LooseOptions, RegExp]> = [
    [{ browserSessions: true }, /"browserSessions" needs `refreshTokens`/],
    [{ refreshTokens: true, browserSessions: 'yes' as unknown as boolean }, /"browserSessions" must be an object or false/],
    [{ refreshTokens: true, browserSessions: null as unknown as boolean }, /"browserSessions" must be an object or false/],
    [{ refreshTokens: true, browserSessions: { header: 'Content-Type' } }, /"browserSessions.header" cannot be "content-type"/],
    [{ refreshTokens: true, browserSessions: { header: 'sec-fetch-site' } }, /"browserSessions.header" cannot be/],
    [{ refreshTokens: true, browserSessions: { header: 'proxy-x' } }, /"browserSessions.header" cannot be/],
    [{ refreshTokens: true, browserSessions: { header: 'x token' } }, /"browserSessions.header" must be a header name/],
    [{ refreshTokens: true, browserSessions: { header: 7 as unknown as string } }, /"browserSessions.header" must be a header name/],
    [{ refreshTokens: true, browserSessions: { origins: 'https://a.example' as unknown as string[] } }, /"browserSessions.origins" must be an array/],
    [{ refreshTokens: true, browserSessions: { origins: ['https://a.example/'] } }, /has "https:\/\/a.example\/", which is not an origin/],
    [{ refreshTokens: true, browserSessions: { origins: ['ftp://a.example'] } }, /not an origin/],
    [{ refreshTokens: true, browserSessions: { origins: [42 as unknown as string] } }, /has "42"/],
    [{ refreshTokens: true, browserSessions: { cookieName: 'refresh' } }, /"browserSessions.cookieName" must be a cookie name that starts with "__Host-"/],
    [{ refreshTokens: true, browserSessions: { cookieName: '__Host-a;b' } }, /cookieName/],
    // One name for two cookies: the refresh cookie would overwrite the device cookie and be read as one.
    [{ refreshTokens: true, browserSessions: { cookieName: '__Host-device' } }, /"browserSessions.cookieName" cannot be "__Host-device", the device cookie's name/],
    [{ refreshTokens: true, browserSessions: { deviceCookie: 'on' as unknown as boolean } }, /"browserSessions.deviceCookie" must be true or false/],
    [{ refreshTokens: true, browserSessions: { deviceSecret: 5 as unknown as string } }, /"browserSessions.deviceSecret" must be a string or a Buffer/],
    [{ refreshTokens: true, browserSessions: { deviceLockout: false as unknown as object } }, /"browserSessions.deviceLockout" must be an object/],
    [{ refreshTokens: true, browserSessions: { deviceLockout: { max: 0 } } }, /"browserSessions.deviceLockout.max" must be a whole number/]
  ]
  for (const [plugin, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(tokenAuth, { secret: SECRET, findUser: () => null, ...plugin } as never)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message }, JSON.stringify(plugin))
  }
  for (const deviceSecret of ['short', 'your-super-secret-key-change-me-in-production']) {
    const weak = Fastify()
    t.teardown(() => weak.close())
    weak.register(tokenAuth, { secret: SECRET, findUser: () => null, refreshTokens: true, browserSessions: { deviceSecret } })
    await t.rejects(async () => { await weak.ready() }, { code: 'FST_TOKEN_AUTH_WEAK_SECRET', message: /"browserSessions.deviceSecret"/ }, 'a weak device secret')
  }
  const verifyOnly = Fastify()
  t.teardown(() => verifyOnly.close())
  verifyOnly.register(tokenAuth, { secret: SECRET, refreshTokens: true, browserSessions: true })
  await t.rejects(async () => { await verifyOnly.ready() }, { message: /"browserSessions" needs `findUser`/ })

  // Accepted: a custom header (case-insensitive), a cookie name, origins, a secret of its own.
  const app = await build(t, {
    browserSessions: { header: 'X-From-App', cookieName: '__Host-rt', origins: ['http://127.0.0.1:5173'], deviceSecret: Buffer.from('a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7'), deviceLockout: { max: 3 } }
  })
  const login = await post(app, '/token', LOGIN, { 'x-from-app': 'cookie', origin: 'http://127.0.0.1:5173' })
  t.equal(login.statusCode, 200)
  t.ok(setCookies(login).some((line) => line.startsWith('__Host-rt=')), 'the cookie\'s name')
  t.equal((await post(app, '/token', LOGIN, PAGE)).json().refresh_token === undefined, false, 'the default header is no signal then')
})

t.test('an app on another origin of the same site, with @fastify/cors as docs/browser-apps.md sets it up', async (t) => {
  const APP = 'https://app.example.com'
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cors, {
    origin: [APP],
    credentials: true,
    methods: ['GET', 'POST'],
    allowedHeaders: ['Authorization', 'Content-Type', 'X-Token-Delivery'],
    exposedHeaders: ['WWW-Authenticate', 'Retry-After']
  })
  await app.register(tokenAuth, {
    secret: SECRET, findUser: (u: string) => users.get(u) ?? null, password: CHEAP, rateLimit: false, refreshTokens: true, browserSessions: { origins: [APP] }
  })
  const pre = await app.inject({
    method: 'OPTIONS', url: '/token', headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-token-delivery' }
  })
  t.equal(pre.statusCode, 204, 'the preflight the custom header costs')
  t.match(pre.headers['access-control-allow-headers'], /X-Token-Delivery/)
  t.equal(pre.headers['access-control-allow-credentials'], 'true')
  const page = { origin: APP, 'x-token-delivery': 'cookie', host: 'api.example.com' }
  const login = await post(app, '/token', LOGIN, page)
  t.equal(login.statusCode, 200)
  t.equal(login.headers['access-control-allow-origin'], APP)
  t.equal(login.headers['access-control-allow-credentials'], 'true', 'so the page may receive the cookie')
  const refreshed = await post(app, '/token', REFRESH, withCookie(refreshCookie(login).value, page))
  t.equal(refreshed.statusCode, 200)
  t.equal((await post(app, '/token', REFRESH, withCookie(refreshCookie(refreshed).value, { ...page, origin: 'https://other.example.com' }))).statusCode, 403, 'an origin not listed')
})
