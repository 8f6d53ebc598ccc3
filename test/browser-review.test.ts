import t from 'tap'
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import tokenAuth from '../lib/index.js'
import { buildApp, FORM, form, SECRET, type LooseOptions } from './helper.js'

/*
 * Browser sessions seen from an attacker's side: a cookie planted beside the app's own, a signal
 * header a page cannot actually send, and what the docs tell a host about where the refresh
 * cookie travels.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

// What a page on the server's own origin sends (light-my-request's host is localhost:80).
const PAGE = { 'x-token-delivery': 'cookie', origin: 'http://localhost:80' }
const COOKIE = '__Host-refresh-token'

async function build (t: Tap, plugin: LooseOptions = {}): Promise<FastifyInstance> {
  return await buildApp(t, { plugin: { rateLimit: false, refreshTokens: true, browserSessions: { deviceCookie: false }, ...plugin } })
}

function post (app: FastifyInstance, url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url, headers: { ...FORM, ...headers }, payload: form(fields) })
}

function setCookies (res: LightMyRequestResponse): string[] {
  const header = res.headers['set-cookie']
  return header === undefined ? [] : Array.isArray(header) ? header : [header]
}

/** The refresh token a browser login puts in the cookie. */
async function browserLogin (app: FastifyInstance, username: string, password: string): Promise<string> {
  const res = await post(app, '/token', { grant_type: 'password', username, password }, PAGE)
  const line = setCookies(res).find((c) => c.startsWith(`${COOKIE}=`)) as string
  return decodeURIComponent((line.split(';')[0] as string).slice(COOKIE.length + 1))
}

t.test('a planted refresh cookie written with blanks before its "=" is still the cookie sent twice', async (t) => {
  const app = await build(t)
  const victim = await browserLogin(app, 'user1', 'password1')
  // The attacker's own session, from their own login.
  const attacker = (await post(app, '/token', { grant_type: 'password', username: 'admin', password: 'admin-password' })).json().refresh_token as string
  // A cookie a sibling subdomain slipped past the __Host- prefix (a nameless cookie, say) comes
  // first in the header when its Path is longer. The cookie parser trims blanks around a name
  // (as browsers trim a Set-Cookie name, RFC 6265 §5.2), so `name =value` is `name=value` to it.
  for (const blank of [' ', '\t', '  \t']) {
    const cookie = `${COOKIE}${blank}=${attacker}; ${COOKIE}=${victim}`
    const refreshed = await post(app, '/token', { grant_type: 'refresh_token' }, { ...PAGE, cookie })
    t.equal(refreshed.statusCode, 400, `refresh, ${JSON.stringify(blank)}: refused, not the attacker's session`)
    t.equal(refreshed.json().error, 'invalid_request')
    t.same(setCookies(refreshed), [], 'the victim\'s cookie is not replaced')
    const logout = await post(app, '/revoke', {}, { ...PAGE, cookie })
    t.equal(logout.statusCode, 400, `logout, ${JSON.stringify(blank)}: refused, rather than ending the attacker's session in the victim's place`)
    t.equal(logout.json().error, 'invalid_request')
  }
  // Nothing ended either session, and the app's own cookie, however spaced and beside a pair with no "=", still works.
  const own = await post(app, '/token', { grant_type: 'refresh_token' }, { ...PAGE, cookie: `a=1; flag;${COOKIE}=${victim} ; b=2` })
  t.equal(own.statusCode, 200, 'the victim\'s session is untouched')
  const me = await app.inject({ url: '/protected', headers: { authorization: `Bearer ${own.json().access_token as string}` } })
  t.equal(me.json().sub, 'user1')
  t.equal((await post(app, '/token', { grant_type: 'refresh_token', refresh_token: attacker })).statusCode, 200, 'the attacker\'s, too')
})

t.test('browserSessions.header refuses every name no script may set (Fetch "forbidden request-header")', async (t) => {
  // The browser drops such a header from a page's fetch without a word: the server would then see
  // no signal, and hand the page its refresh token in the JSON body, where scripts read it.
  for (const header of ['Accept-Charset', 'Accept-Encoding', 'Access-Control-Request-Headers', 'Access-Control-Request-Method',
    'Cookie2', 'Date', 'DNT', 'Expect', 'Keep-Alive', 'Set-Cookie', 'TE', 'Trailer', 'Transfer-Encoding', 'Upgrade', 'Via']) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(tokenAuth, { secret: SECRET, findUser: () => null, refreshTokens: true, browserSessions: { header } })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message: /"browserSessions.header" cannot be/ }, header)
  }
  // Custom names remain fine.
  const app = await build(t, { browserSessions: { deviceCookie: false, header: 'X-Requested-By' } })
  t.equal((await post(app, '/token', { grant_type: 'password', username: 'user1', password: 'password1' }, { 'x-requested-by': 'cookie', origin: 'http://localhost:80' })).json().refresh_token, undefined)
})

t.test('docs/browser-apps.md says where the refresh cookie travels: every path of the host', async (t) => {
  const app = await build(t)
  const res = await post(app, '/token', { grant_type: 'password', username: 'user1', password: 'password1' }, PAGE)
  const line = setCookies(res).find((c) => c.startsWith(`${COOKIE}=`)) as string
  t.match(line, /; Path=\/(;|$)/, 'Path=/, as the __Host- prefix demands (RFC 6265bis §4.1.3.2)')
  const docs = readFileSync(new URL('../docs/browser-apps.md', import.meta.url), 'utf8').replace(/\s+/g, ' ')
  t.notMatch(docs, /sends back to `\/token` and `\/revoke` only/, 'no claim that other paths never see it')
  t.match(docs, /sends it with every request to the API's host/, 'the docs say the browser sends it with every request to the host')
})
