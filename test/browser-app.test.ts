import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Page, type Response } from 'playwright-core'
import { start } from '../examples/server.js'

/*
 * The example server's single-page app (/app/) in a real browser: Debian's headless Chromium,
 * driven by playwright-core, as test/browser-docs.test.ts drives Swagger UI. With a 3-second
 * access token it logs in, sees the user, outlives the first access token on a silent refresh
 * through the httpOnly cookie, stays logged in across a reload, and logs out; no script on the
 * page can see the refresh token. At http://localhost: Chromium takes `Secure` (and `__Host-`)
 * cookies from localhost over plain HTTP, as a potentially trustworthy origin.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url))
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
const STEP_TIMEOUT = 30_000
const ACCESS_TOKEN_TTL = 3

const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM}: install Debian's (apt-get install chromium) or set CHROMIUM_PATH`
if (skip !== false) console.log(`# SKIP browser app test: ${skip}`)

/** Whether a response is the answer to a POST of `grant_type` to /token. */
function tokenAnswer (grantType: string): (res: Response) => boolean {
  return (res) => new URL(res.url()).pathname === '/token' && res.request().method() === 'POST' &&
    new URLSearchParams(res.request().postData() ?? '').get('grant_type') === grantType
}

/** Everything a script on the page can read: cookies, both storages, the document. */
async function scriptVisible (page: Page): Promise<string> {
  // An expression, run in the page (the test itself is compiled without the DOM's types).
  return await page.evaluate<string>(`JSON.stringify({
    cookie: document.cookie,
    local: { ...localStorage },
    session: { ...sessionStorage },
    html: document.documentElement.outerHTML
  })`)
}

t.test('the example app logs in, refreshes silently, survives a reload and logs out, in Chromium', { skip, timeout: 180_000 }, async (t) => {
  const app = await start({ LOG_LEVEL: 'silent', JWT_SECRET: 'browser-app-test-secret-5d2b8e1f9a4c7e3b', HOST: '127.0.0.1', PORT: '0', ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL) })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const origin = `http://localhost:${port}`

  const profile = mkdtempSync(join(tmpdir(), 'fastify-token-auth-chromium-'))
  t.teardown(() => rmSync(profile, { recursive: true, force: true }))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 900, height: 700 }, timeout: 60_000
  })
  t.teardown(() => browser.close())
  const page = browser.pages()[0] ?? await browser.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT)
  mkdirSync(ARTIFACTS, { recursive: true })
  const refreshCookie = async (): Promise<string | undefined> => (await browser.cookies(origin)).find((c) => c.name === '__Host-refresh-token')?.value

  // /app redirects to /app/, which is served under a strict Content-Security-Policy.
  const first = await page.goto(`${origin}/app`)
  t.equal(new URL(page.url()).pathname, '/app/')
  t.match(first?.headers()['content-security-policy'], /default-src 'self'/)
  await page.locator('#login').waitFor()
  t.equal(await refreshCookie(), undefined, 'no session yet')

  await page.locator('input[name=username]').fill('user1')
  await page.locator('input[name=password]').fill('password1')
  const [login] = await Promise.all([page.waitForResponse(tokenAnswer('password')), page.locator('#login button[type=submit]').click()])
  t.equal(login.status(), 200)
  t.equal(login.request().headers()['x-token-delivery'], 'cookie', 'the page asks for the cookie')
  const loginBody = await login.json() as Record<string, unknown>
  t.notOk('refresh_token' in loginBody, 'no refresh token in the JSON the page receives')
  t.equal(loginBody.expires_in, ACCESS_TOKEN_TTL)
  await page.locator('#user', { hasText: 'user1' }).waitFor()
  t.equal(await page.locator('#scope').innerText(), 'profile')
  const cookies = await browser.cookies(origin)
  const session = cookies.find((c) => c.name === '__Host-refresh-token')
  t.ok(session, 'Chromium kept the __Host- refresh cookie from http://localhost')
  t.match(session, { httpOnly: true, secure: true, sameSite: 'Strict', path: '/' })
  t.ok(cookies.find((c) => c.name === '__Host-device')?.httpOnly, 'and the device cookie, httpOnly too')
  await page.screenshot({ path: join(ARTIFACTS, 'app-logged-in.png') })

  // Past the first access token's lifetime: the page refreshed it in time, through the cookie.
  const refreshed = await page.waitForResponse(tokenAnswer('refresh_token'), { timeout: ACCESS_TOKEN_TTL * 1000 + STEP_TIMEOUT })
  t.equal(refreshed.status(), 200, 'a silent refresh')
  t.equal(refreshed.request().postData(), 'grant_type=refresh_token', 'no token in the body: the cookie carries it')
  t.notOk('refresh_token' in (await refreshed.json() as Record<string, unknown>))
  await page.locator('#refreshes', { hasText: /^[1-9]/ }).waitFor()
  await page.waitForTimeout(ACCESS_TOKEN_TTL * 1000 + 500)
  await page.locator('#call-protected').click()
  await page.locator('#result', { hasText: '/protected → 200' }).waitFor()
  t.match(await page.locator('#result').innerText(), /Hello, authenticated user!/, 'the API answers after the first access token expired')
  await page.locator('#call-admin').click()
  await page.locator('#result', { hasText: '/admin → 403' }).waitFor()
  t.pass('/admin refuses user1: 403')
  await page.screenshot({ path: join(ARTIFACTS, 'app-refreshed.png') })

  // The refresh token never reaches the page's script.
  const token = await refreshCookie() as string
  t.match(token, /^[\w-]{22}\.[\w-]{22}\.[\w-]{43}$/)
  const visible = await scriptVisible(page)
  t.notOk(visible.includes(token), 'the refresh token is in no cookie, storage or markup a script can read')
  t.notMatch(visible, /__Host-refresh-token|__Host-device/, 'document.cookie does not even name the cookies')

  // A reload loses the access token (memory only); the cookie brings the session back.
  const [reloaded] = await Promise.all([page.waitForResponse(tokenAnswer('refresh_token')), page.reload()])
  t.equal(reloaded.status(), 200)
  await page.locator('#user', { hasText: 'user1' }).waitFor()
  t.pass('still logged in after a reload')

  const [logout] = await Promise.all([
    page.waitForResponse((res) => new URL(res.url()).pathname === '/revoke' && !(res.request().postData() ?? '').includes('token=ey')),
    page.locator('#logout').click()
  ])
  t.equal(logout.status(), 200)
  t.match(await logout.headerValue('set-cookie'), /__Host-refresh-token=;.*Max-Age=0/, 'the cookie is cleared')
  await page.locator('#login').waitFor()
  t.equal(await refreshCookie(), undefined, 'the browser dropped it')
  const [afterReload] = await Promise.all([page.waitForResponse(tokenAnswer('refresh_token')), page.reload()])
  t.equal(afterReload.status(), 400, 'no session to find after a reload')
  await page.locator('#login').waitFor()
  t.ok(await page.locator('#session').isHidden(), 'logged out')
  await page.screenshot({ path: join(ARTIFACTS, 'app-logged-out.png') })
})
