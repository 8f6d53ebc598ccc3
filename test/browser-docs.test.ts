import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Locator, type Page } from 'playwright-core'
import { start } from '../examples/server.js'

/*
 * The example server's Swagger UI in a real browser: Debian's headless Chromium, driven by
 * playwright-core (no browser download). It logs in through the Authorize button's password flow,
 * then "Try it out" on GET /protected answers 200 and on GET /admin 403. Screenshots go to
 * test-artifacts/ (git-ignored) for a person to look at.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url))
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
// A loaded machine starts Chromium slowly; nothing here waits on a tight timing.
const STEP_TIMEOUT = 30_000

const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM}: install Debian's (apt-get install chromium) or set CHROMIUM_PATH`
if (skip !== false) console.log(`# SKIP browser test: ${skip}`)

/** The operation block of one path in Swagger UI. */
function operation (page: Page, path: string): Locator {
  return page.locator('.opblock', { has: page.locator('.opblock-summary-path', { hasText: new RegExp(`^${path}$`) }) })
}

/** Expands an operation, runs "Try it out" and returns the status and body shown. */
async function tryItOut (page: Page, path: string): Promise<{ status: string, body: Record<string, unknown>, curl: string }> {
  const op = operation(page, path)
  await op.locator('.opblock-summary-control').click()
  await op.locator('.try-out__btn').click()
  await op.locator('.execute').click()
  const row = op.locator('.live-responses-table .response')
  await row.waitFor()
  return {
    // The cell may add a note under the code, e.g. "Undocumented".
    status: (await row.locator('.response-col_status').innerText()).trim().split(/\s+/)[0] as string,
    body: JSON.parse(await row.locator('.highlight-code pre').first().innerText()),
    curl: await op.locator('.curl-command').innerText()
  }
}

t.test('Swagger UI logs in with the Authorize button and calls the protected routes', { skip, timeout: 180_000 }, async (t) => {
  const app = await start({ LOG_LEVEL: 'silent', JWT_SECRET: 'browser-test-secret-7c1e9a3f5b8d2e4a6c0f', HOST: '127.0.0.1', PORT: '0' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo

  const profile = mkdtempSync(join(tmpdir(), 'fastify-token-auth-chromium-'))
  t.teardown(() => rmSync(profile, { recursive: true, force: true }))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1100, height: 760 },
    timeout: 60_000
  })
  t.teardown(() => browser.close())
  const page = browser.pages()[0] ?? await browser.newPage()
  page.setDefaultTimeout(STEP_TIMEOUT)
  mkdirSync(ARTIFACTS, { recursive: true })

  await page.goto(`http://127.0.0.1:${port}/docs`)
  await page.locator('.btn.authorize').click()
  const dialog = page.locator('.modal-ux')
  t.match(await dialog.innerText(), /Token URL:\s*\/token/, 'the password flow posts to the real token endpoint')
  await dialog.locator('#oauth_username').fill('user1')
  await dialog.locator('#oauth_password').fill('password1')
  const [tokenResponse] = await Promise.all([
    page.waitForResponse((res) => new URL(res.url()).pathname === '/token' && res.request().method() === 'POST'),
    dialog.locator('button.authorize').click()
  ])
  t.equal(tokenResponse.status(), 200, 'the token endpoint accepted the login')
  t.match(tokenResponse.request().headers()['content-type'], /^application\/x-www-form-urlencoded/)
  t.match(tokenResponse.request().postData(), /grant_type=password/)
  await dialog.locator('button', { hasText: 'Logout' }).waitFor()
  t.match(await dialog.innerText(), /Authorized/)
  await page.screenshot({ path: join(ARTIFACTS, 'docs-authorized.png') })
  await dialog.locator('button.btn-done').click()

  const granted = await tryItOut(page, '/protected')
  t.equal(granted.status, '200')
  t.same(granted.body, { message: 'Hello, authenticated user!' })
  t.match(granted.curl, /Authorization: Bearer [\w-]+\.[\w-]+\.[\w-]+/, 'Swagger UI sent the token')
  await operation(page, '/protected').screenshot({ path: join(ARTIFACTS, 'docs-protected-200.png') })

  const refused = await tryItOut(page, '/admin')
  t.equal(refused.status, '403', 'user1 lacks the admin scope')
  t.equal(refused.body.code, 'FST_TOKEN_AUTH_INSUFFICIENT_SCOPE')
  await operation(page, '/admin').screenshot({ path: join(ARTIFACTS, 'docs-admin-403.png') })
  await page.screenshot({ path: join(ARTIFACTS, 'docs-full.png'), fullPage: true })
  t.ok(existsSync(join(ARTIFACTS, 'docs-authorized.png')), 'screenshots saved in test-artifacts/')
})
