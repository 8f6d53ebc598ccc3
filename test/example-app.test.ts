import t from 'tap'
import { readFileSync } from 'node:fs'
import vm from 'node:vm'
import { buildServer } from '../examples/server.js'
import { FORM } from './helper.js'

/*
 * examples/app/app.js, the example server's single-page app, run in Node as a page at
 * http://localhost:3000/app/ runs it: a stub of the few DOM parts it touches, and a fetch that
 * behaves as a same-origin page's does (Origin on POSTs, Sec-Fetch-Site, a cookie jar) in front of
 * the example server. Each load is a new context on the same jar, as a reload or a second tab is.
 * The page's timers are stubs the test fires, and the server's clock (Date.now) moves when the
 * test says: no test waits for a refresh or a rate-limit window. test/browser-app.test.ts drives
 * the same app in Chromium, where there is one.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]
type Server = Awaited<ReturnType<typeof buildServer>>
type Listener = (event?: unknown) => Promise<void>
interface Element {
  textContent: string
  hidden: boolean
  values: Record<string, string>
  listeners: Map<string, Listener>
  addEventListener: (type: string, listener: Listener) => void
  reset: () => void
}
interface Init { method?: string, headers?: Record<string, string>, body?: URLSearchParams, credentials?: string }
interface Sent { request: string, status: number, cookie: string | undefined, body: string, answer: string, retryAfter: string | undefined }

const SOURCE = readFileSync(new URL('../examples/app/app.js', import.meta.url), 'utf8')
const HOST = 'localhost:3000'
const ORIGIN = `http://${HOST}`
const COOKIE = '__Host-refresh-token'
const MAX_DELAY = 2 ** 31 - 1
const ENV = { LOG_LEVEL: 'silent', JWT_SECRET: 'example-app-test-secret-7c1e9a4f2b8d6e3a' }
/** The refresh of a 15-minute access token (the example's default), a minute before it expires. */
const REFRESH_AT = (900 - 60) * 1000

async function serve (t: Tap, env: Record<string, string> = {}): Promise<Server> {
  const server = await buildServer({ ...ENV, ...env })
  t.teardown(() => server.close())
  return server
}

/** Moves the server's clock forward (a rate-limit window passing, a computer asleep) for the rest of the test. */
function serverClock (t: Tap): { advance: (ms: number) => void } {
  const realNow = Date.now
  let offset = 0
  Date.now = () => realNow() + offset
  t.teardown(() => { Date.now = realNow })
  return { advance: (ms) => { offset += ms } }
}

/** Someone else behind the same address (a colleague behind one NAT) uses up the per-IP limit of `url`. */
async function exhaustPerIpLimit (server: Server, url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const payload = url === '/token' ? 'grant_type=refresh_token&refresh_token=x' : 'token=x'
    const res = await server.inject({ method: 'POST', url, headers: FORM, payload })
    if (res.statusCode === 429) return
  }
  throw new Error(`${url} never answered 429`)
}

/** A refresh by the cookie `value`, sent as the page sends it. */
function refreshWith (server: Server, value: string) {
  return server.inject({
    method: 'POST',
    url: '/token',
    headers: { ...FORM, host: HOST, origin: ORIGIN, 'x-token-delivery': 'cookie', cookie: `${COOKIE}=${value}` },
    payload: 'grant_type=refresh_token'
  })
}

/**
 * A browser's side of the example server: the cookie jar of the origin, the requests its pages
 * sent, and `fetch` as a same-origin page has it. `next` answers the next request to a path in
 * the server's place (a store outage); `before` runs before each request reaches the server.
 */
function createBrowser (server: Server) {
  const jar = new Map<string, string>()
  const sent: Sent[] = []
  const next = new Map<string, { status: number, body: object, headers: Record<string, string> }>()
  let inFlight = 0
  const browser = {
    jar,
    sent,
    next,
    inFlight: () => inFlight,
    /** Every request fails as fetch fails with no network. */
    offline: false,
    before: undefined as undefined | ((path: string, headers: Record<string, string>) => Promise<void>),
    /** Runs when the server has answered, before the browser has the answer: a slow network back. */
    after: undefined as undefined | ((path: string, body: string) => Promise<void>),
    fetch: async (path: string, init: Init = {}): Promise<Response> => {
      inFlight += 1
      try {
        return await send(path, init)
      } finally {
        inFlight -= 1
      }
    }
  }

  /** Set-Cookie as a browser takes it, the rules of the `__Host-` prefix included. */
  function take (line: string): void {
    const [pair = '', ...attributes] = line.split(';').map((part) => part.trim())
    const name = pair.slice(0, pair.indexOf('='))
    const lower = attributes.map((attribute) => attribute.toLowerCase())
    // RFC 6265bis §4.1.3.2: Secure, Path=/ and no Domain, or no browser keeps it. Browsers take
    // Secure cookies from http://localhost, a potentially trustworthy origin.
    if (name.startsWith('__Host-') && !(lower.includes('secure') && lower.includes('path=/') && !lower.some((a) => a.startsWith('domain=')))) return
    const maxAge = lower.find((a) => a.startsWith('max-age='))
    if (maxAge !== undefined && Number(maxAge.slice('max-age='.length)) <= 0) jar.delete(name)
    else jar.set(name, pair.slice(name.length + 1))
  }

  async function send (path: string, init: Init): Promise<Response> {
    const method = init.method ?? 'GET'
    const headers: Record<string, string> = { ...init.headers, host: HOST, 'sec-fetch-site': 'same-origin' }
    // Browsers send Origin with a POST, not with a same-origin GET.
    if (method !== 'GET') headers.origin = ORIGIN
    if (init.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded;charset=UTF-8'
    if (init.credentials !== 'omit' && jar.size > 0) headers.cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
    const cookie = jar.get(COOKIE)
    const body = init.body?.toString() ?? ''
    await browser.before?.(path, headers)
    if (browser.offline) throw new TypeError('Failed to fetch')

    const fault = next.get(path)
    next.delete(path)
    const res = fault === undefined
      ? await server.inject({ method: method as 'GET', url: path, headers, payload: body === '' ? undefined : body })
      : { statusCode: fault.status, headers: { 'content-type': 'application/json; charset=utf-8', ...fault.headers }, payload: JSON.stringify(fault.body) }
    await browser.after?.(path, body)
    const answer = new Headers()
    for (const [name, value] of Object.entries(res.headers)) {
      for (const one of [value ?? []].flat()) answer.append(name, String(one))
    }
    for (const line of answer.getSetCookie()) take(line)
    sent.push({ request: `${method} ${path}`, status: res.statusCode, cookie, body, answer: res.payload, retryAfter: answer.get('retry-after') ?? undefined })
    return new Response(res.payload, { status: res.statusCode, headers: answer })
  }

  return browser
}

type Browser = ReturnType<typeof createBrowser>

/** The last access token the server gave the browser. */
function lastAccessToken (browser: Browser): string {
  const answer = browser.sent.filter((s) => s.request === 'POST /token' && s.status === 200).at(-1)
  return JSON.parse(answer?.answer ?? '{}').access_token
}

/** Opens /app/ in a new page of `browser`: app.js in a fresh context, its DOM and timers stubbed. */
async function load (browser: Browser, navigator: object = {}) {
  const elements = new Map<string, Element>()
  const element = (id: string): Element => {
    let found = elements.get(id)
    if (found === undefined) {
      // index.html hides both views until the app knows which one to show.
      const listeners = new Map<string, Listener>()
      found = {
        textContent: '',
        hidden: id === 'login' || id === 'session',
        values: {},
        listeners,
        addEventListener: (type, listener) => { listeners.set(type, listener) },
        reset () { this.values = {} }
      }
      elements.set(id, found)
    }
    return found
  }
  const timers = new Map<number, { task: () => unknown, ms: number }>()
  let ids = 0
  const context = vm.createContext({
    document: { getElementById: element },
    FormData: class { constructor (form: Element) { return new Map(Object.entries(form.values)) } },
    URLSearchParams,
    fetch: browser.fetch,
    navigator,
    setTimeout: (task: () => unknown, ms: number) => { timers.set(++ids, { task, ms }); return ids },
    clearTimeout: (id: number) => { timers.delete(id) },
    console
  })

  /** Waits until the page has no request under way and has handled the last answer. */
  async function settle (): Promise<void> {
    for (let idle = 0; idle < 3; idle = browser.inFlight() === 0 ? idle + 1 : 0) await new Promise((resolve) => setTimeout(resolve, 1))
  }

  const page = {
    text: (id: string) => element(id).textContent,
    shown: (id: string) => !element(id).hidden,
    /** The delay of the one timer the page has set; undefined if none. */
    timer: (): number | undefined => {
      if (timers.size > 1) throw new Error(`${timers.size} timers pending`)
      return [...timers.values()][0]?.ms
    },
    /** Runs the pending timer now, as if its delay had passed. */
    fire: async () => {
      const [id, timer] = [...timers][0] ?? []
      if (id === undefined || timer === undefined) throw new Error('no timer pending')
      timers.delete(id)
      timer.task()
      await settle()
    },
    /** What the page's listeners threw: a browser logs it, and the page stays as it was left. */
    errors: [] as string[],
    click: async (id: string) => {
      await (element(id).listeners.get('click') as Listener)().catch((error: Error) => { page.errors.push(error.message) })
      await settle()
    },
    submit: async (username: string, password: string) => {
      const form = element('login')
      form.values = { username, password }
      await (form.listeners.get('submit') as Listener)({ preventDefault () {}, target: form })
      await settle()
    }
  }
  // index.html loads app.js as a module; it imports and exports nothing, so a strict-mode script is the same code.
  vm.runInContext(`'use strict';${SOURCE}`, context, { filename: 'app.js' })
  await settle()
  return page
}

type Page = Awaited<ReturnType<typeof load>>

function loggedIn (t: Tap, page: Page, user: string): void {
  t.equal(page.text('status'), 'Logged in.')
  t.equal(page.text('user'), user)
  t.ok(page.shown('session'))
  t.notOk(page.shown('login'))
}

function loggedOut (t: Tap, page: Page): void {
  t.equal(page.text('status'), 'Logged out.')
  t.ok(page.shown('login'))
  t.notOk(page.shown('session'))
}

/** A page logged in as `username`, on a server whose clock the test moves. */
async function loggedInPage (t: Tap, username: string, password: string, env: Record<string, string> = {}) {
  const server = await serve(t, env)
  const clock = serverClock(t)
  const browser = createBrowser(server)
  const page = await load(browser)
  await page.submit(username, password)
  return { server, clock, browser, page }
}

t.test('logs in, stays logged in across a reload, and logs out', async (t) => {
  const server = await serve(t)
  const browser = createBrowser(server)

  let page = await load(browser)
  loggedOut(t, page)
  t.same(browser.sent.map((s) => `${s.request} ${s.status}`), ['POST /token 400'], 'no cookie: no session to find')

  await page.submit('user1', 'password1')
  loggedIn(t, page, 'user1')
  t.equal(page.text('scope'), 'profile')
  t.ok(browser.jar.has(COOKIE), 'the jar took the __Host- cookie')
  t.equal(page.timer(), REFRESH_AT)

  page = await load(browser)
  loggedIn(t, page, 'user1')
  t.equal(page.text('refreshes'), '1')
  const access = lastAccessToken(browser)
  t.equal((await server.inject({ url: '/me', headers: { authorization: `Bearer ${access}` } })).statusCode, 200)

  const before = browser.sent.length
  await page.click('logout')
  t.same(browser.sent.slice(before).map((s) => [s.request, s.body, s.status]), [['POST /revoke', 'token_type_hint=refresh_token', 200]],
    'one request, which ends the session in the cookie')
  loggedOut(t, page)
  t.notOk(browser.jar.has(COOKIE), 'the cookie is gone')
  t.equal(page.timer(), undefined, 'no refresh pending')
  t.equal((await server.inject({ url: '/me', headers: { authorization: `Bearer ${access}` } })).statusCode, 401,
    'the session ended, its access tokens are denied (revocableAccessTokens)')

  loggedOut(t, await load(browser))
})

t.test('a logout refused for now (429) says so, keeps the session, and a retry logs out', async (t) => {
  const { server, clock, browser, page } = await loggedInPage(t, 'admin', 'admin-password')
  loggedIn(t, page, 'admin')

  await exhaustPerIpLimit(server, '/revoke')
  await page.click('logout')
  const refused = browser.sent.at(-1) as Sent
  t.equal(refused.status, 429)
  t.match(page.text('status'), /^Not logged out \(Too many token requests; retry later\): try again in \d+ s\.$/)
  t.equal(page.text('status').match(/(\d+) s/)?.[1], refused.retryAfter, 'with the wait the server asked for')
  t.same(page.errors, [], 'the page handled the refusal')
  t.ok(page.shown('session'), 'the session view stays')
  t.notOk(page.shown('login'))
  t.ok(browser.jar.has(COOKIE), 'and the cookie')

  clock.advance(Number(refused.retryAfter) * 1000)
  // What the page said is true: another tab, or a reload, still finds the session.
  loggedIn(t, await load(browser), 'admin')

  await page.click('logout')
  t.equal((browser.sent.at(-1) as Sent).status, 200)
  loggedOut(t, page)
  t.notOk(browser.jar.has(COOKIE), 'the cookie is gone')
  const last = browser.sent.at(-1)?.cookie as string
  t.equal((await refreshWith(server, last)).json().error, 'invalid_grant', 'and its session is over, not only forgotten')
  loggedOut(t, await load(browser))
})

t.test('a refresh refused for now (429) keeps the session and tries again after Retry-After', async (t) => {
  const { server, clock, browser, page } = await loggedInPage(t, 'user1', 'password1')

  await exhaustPerIpLimit(server, '/token')
  await page.fire()
  const refused = browser.sent.at(-1) as Sent
  t.equal(refused.request, 'POST /token')
  t.equal(refused.status, 429)
  t.match(page.text('status'), /^Session not refreshed \(Too many token requests; retry later\): trying again in \d+ s\.$/)
  t.ok(page.shown('session'), 'the session view stays')
  t.notOk(page.shown('login'))
  t.ok(browser.jar.has(COOKIE))
  t.equal(page.timer(), Number(refused.retryAfter) * 1000, 'the next try when Retry-After says')

  clock.advance(Number(refused.retryAfter) * 1000)
  await page.fire()
  loggedIn(t, page, 'user1')
  t.equal(page.text('refreshes'), '1')
  t.equal(page.timer(), REFRESH_AT, 'and the refresh after that as usual')
})

t.test('a store outage (503) while loading is no logout: the page checks again', async (t) => {
  const server = await serve(t)
  const browser = createBrowser(server)
  await (await load(browser)).submit('user1', 'password1')

  // The plugin's answer when its store is away.
  browser.next.set('/token', { status: 503, body: { error: 'temporarily_unavailable', error_description: 'The service is temporarily unavailable; retry later' }, headers: { 'retry-after': '1' } })
  const page = await load(browser)
  t.equal(page.text('status'), 'Session not refreshed (The service is temporarily unavailable; retry later): trying again in 1 s.')
  t.notOk(page.shown('login'), 'no login form: the session may well be there')
  t.equal(page.timer(), 1000)

  await page.fire()
  loggedIn(t, page, 'user1')
})

t.test('no network: the page keeps its session and tries again in 10 s', async (t) => {
  const { browser, page } = await loggedInPage(t, 'user1', 'password1')

  browser.offline = true
  await page.fire()
  t.equal(page.text('status'), 'Session not refreshed (Failed to fetch): trying again in 10 s.')
  t.ok(page.shown('session'))
  t.equal(page.timer(), 10_000)
  await page.click('logout')
  t.equal(page.text('status'), 'Not logged out (Failed to fetch): try again in 10 s.')
  t.ok(page.shown('session'))

  browser.offline = false
  await page.fire()
  loggedIn(t, page, 'user1')
  await page.click('logout')
  loggedOut(t, page)
})

t.test('/me out of reach after a good refresh: the page says so and asks again; an API call with no network says so', async (t) => {
  const server = await serve(t)
  const browser = createBrowser(server)
  await (await load(browser)).submit('user1', 'password1')

  browser.before = async (path) => { if (path === '/me') throw new TypeError('Failed to fetch') }
  const page = await load(browser)
  t.equal(page.text('status'), 'Session not shown (/me: Failed to fetch): trying again in 10 s.')
  t.notOk(page.shown('login'), 'no login form: the session is there')
  t.equal(page.timer(), 10_000)

  // A proxy's error page, not JSON.
  browser.before = undefined
  browser.next.set('/me', { status: 502, body: {}, headers: { 'content-type': 'text/html' } })
  await page.fire()
  t.equal(page.text('status'), 'Session not shown (/me: 502): trying again in 10 s.')
  await page.fire()
  loggedIn(t, page, 'user1')

  browser.offline = true
  await page.click('call-protected')
  t.same(page.errors, [], 'the page handled it')
  t.equal(page.text('result'), '/protected → Failed to fetch')
  loggedIn(t, page, 'user1')
})

t.test('a logout while a refresh is under way ends the session the refresh left, and it stays ended', async (t) => {
  const { browser, page } = await loggedInPage(t, 'user1', 'password1')
  const spent = browser.jar.get(COOKIE)

  // The refresh reached the server (the cookie rotated there); its answer is still on its way.
  let answered!: () => void
  const inFlight = new Promise<void>((resolve) => { answered = resolve })
  let release!: () => void
  const back = new Promise<void>((resolve) => { release = resolve })
  browser.after = async (path, body) => {
    if (path !== '/token' || body !== 'grant_type=refresh_token') return
    answered()
    await back
  }
  const firing = page.fire()
  await inFlight
  const clicking = page.click('logout')
  await new Promise((resolve) => setTimeout(resolve, 20))
  release()
  await Promise.all([firing, clicking])

  t.same(browser.sent.slice(-2).map((s) => `${s.request} ${s.status}`), ['POST /token 200', 'POST /revoke 200'])
  t.not(browser.sent.at(-1)?.cookie, spent, 'the logout sent the token the refresh left')
  loggedOut(t, page)
  t.equal(page.timer(), undefined, 'the refresh\'s answer armed no timer')
  t.notOk(browser.jar.has(COOKIE), 'no cookie left')
  loggedOut(t, await load(browser))
})

t.test('a session ended elsewhere logs the page out at its next refresh', async (t) => {
  const { server, browser, page } = await loggedInPage(t, 'user1', 'password1')

  // Ended from another device, say, through the token itself: the cookie stays, the server refuses it.
  await server.inject({ method: 'POST', url: '/revoke', headers: FORM, payload: new URLSearchParams({ token: browser.jar.get(COOKIE) as string }).toString() })
  await page.fire()
  t.equal((browser.sent.at(-1) as Sent).status, 400)
  t.equal(JSON.parse((browser.sent.at(-1) as Sent).answer).error, 'invalid_grant')
  loggedOut(t, page)
  t.equal(page.timer(), undefined, 'no refresh pending')
})

t.test('a 401 from the API brings one refresh and one retry', async (t) => {
  t.test('an access token that expired while the computer slept', async (t) => {
    const { clock, browser, page } = await loggedInPage(t, 'user1', 'password1', { ACCESS_TOKEN_TTL: '60' })

    // Asleep for ten minutes: the refresh timer did not run, the access token expired.
    clock.advance(10 * 60_000)
    const before = browser.sent.length
    await page.click('call-protected')
    t.same(browser.sent.slice(before).map((s) => `${s.request} ${s.status}`), ['GET /protected 401', 'POST /token 200', 'GET /protected 200'])
    t.match(page.text('result'), /^\/protected → 200\n/)
    loggedIn(t, page, 'user1')
  })

  t.test('an access token revoked before the page called /me', async (t) => {
    const server = await serve(t)
    const browser = createBrowser(server)
    await (await load(browser)).submit('user1', 'password1')

    let revocations = 0
    browser.before = async (path, headers) => {
      if (path !== '/me' || revocations++ > 0) return
      await server.inject({ method: 'POST', url: '/revoke', headers: FORM, payload: new URLSearchParams({ token: (headers.authorization as string).slice('Bearer '.length) }).toString() })
    }
    const before = browser.sent.length
    const page = await load(browser)
    t.same(browser.sent.slice(before).map((s) => `${s.request} ${s.status}`), ['POST /token 200', 'GET /me 401', 'POST /token 200', 'GET /me 200'])
    loggedIn(t, page, 'user1')
  })

  t.test('and no more when the new token is refused too', async (t) => {
    const { server, browser, page } = await loggedInPage(t, 'user1', 'password1')

    browser.before = async (path, headers) => {
      if (path !== '/protected') return
      await server.inject({ method: 'POST', url: '/revoke', headers: FORM, payload: new URLSearchParams({ token: (headers.authorization as string).slice('Bearer '.length) }).toString() })
    }
    const before = browser.sent.length
    await page.click('call-protected')
    t.same(browser.sent.slice(before).map((s) => `${s.request} ${s.status}`), ['GET /protected 401', 'POST /token 200', 'GET /protected 401'])
    t.match(page.text('result'), /^\/protected → 401\n/)
  })
})

t.test('a 30-day access token schedules its refresh within setTimeout\'s range', async (t) => {
  const server = await serve(t, { ACCESS_TOKEN_TTL: String(30 * 24 * 3600) })
  const browser = createBrowser(server)
  const page = await load(browser)
  await page.submit('user1', 'password1')
  loggedIn(t, page, 'user1')
  // Browsers run a longer delay at once: the page would refresh in a loop.
  t.equal(page.timer(), MAX_DELAY)
})

t.test('two tabs refreshing at once take turns (navigator.locks): the second sends the cookie the first got', async (t) => {
  const server = await serve(t)
  const browser = createBrowser(server)
  // One lock manager per origin, shared by its tabs.
  let queue: Promise<unknown> = Promise.resolve()
  const locks = {
    request: (_name: string, task: () => Promise<unknown>) => {
      const turn = queue.then(task)
      queue = turn.catch(() => {})
      return turn
    }
  }
  const first = await load(browser, { locks })
  await first.submit('user1', 'password1')
  const second = await load(browser, { locks })
  loggedIn(t, second, 'user1')

  const before = browser.sent.length
  await Promise.all([first.fire(), second.fire()])
  const refreshes = browser.sent.slice(before).filter((s) => s.request === 'POST /token')
  t.same(refreshes.map((s) => s.status), [200, 200])
  t.not(refreshes[1]?.cookie, refreshes[0]?.cookie, 'the second refresh sent the token the first one left in the jar')
  loggedIn(t, first, 'user1')
  loggedIn(t, second, 'user1')
  loggedIn(t, await load(browser, { locks }), 'user1')
})
