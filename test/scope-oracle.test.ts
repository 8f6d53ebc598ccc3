import t from 'tap'
import type { AuthEvent } from '../lib/index.js'
import { buildApp, countArgon2Verifies, tokenRequest } from './helper.js'

/*
 * No password oracle through scope (issue 13). A scope the server does not offer is refused
 * before any password is checked, so the answer is the same for a right and a wrong password;
 * a scope the user lacks is narrowed (RFC 6749 §3.3), never an error after a right password.
 */

const RIGHT = { grant_type: 'password', username: 'user1', password: 'password1' }
const WRONG = { ...RIGHT, password: 'wrong-password' }
const SCOPES = { profile: 'Your profile', admin: 'Administration' }

t.test('a scope the server does not offer: the same invalid_scope for a right and a wrong password, before any check', async (t) => {
  const verifies = countArgon2Verifies(t)
  const events: AuthEvent[] = []
  const app = await buildApp(t, { plugin: { rateLimit: false, scopes: SCOPES, onAuthEvent: (e) => events.push(e) } })
  const before = verifies()
  const right = await tokenRequest(app, { ...RIGHT, scope: 'profile superuser' })
  const wrong = await tokenRequest(app, { ...WRONG, scope: 'profile superuser' })
  t.equal(right.statusCode, 400)
  t.same(right.json(), wrong.json(), 'one answer whatever the password')
  t.equal(right.json().error, 'invalid_scope')
  t.same(right.headers['retry-after'], wrong.headers['retry-after'])
  t.equal(verifies(), before, 'no password was checked')
  t.match(events.filter((e) => e.type === 'login.failure'), [{ reason: 'invalid_scope', username: 'user1' }, { reason: 'invalid_scope' }])
  // Not counted as failed logins: many of them leave the right password working.
  for (let i = 0; i < 10; i++) await tokenRequest(app, { ...WRONG, scope: 'superuser' })
  t.equal((await tokenRequest(app, RIGHT)).statusCode, 200)
})

t.test('a scope the user lacks, among those offered: narrowed after a right password, invalid_grant after a wrong one', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false, scopes: SCOPES } })
  const right = await tokenRequest(app, { ...RIGHT, scope: 'profile admin' })
  t.equal(right.statusCode, 200)
  t.equal(right.json().scope, 'profile')
  t.equal((await tokenRequest(app, { ...WRONG, scope: 'profile admin' })).json().error, 'invalid_grant')
})

t.test('a scope a route requires through requireScopes is offered though not listed in `scopes`', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false, scopes: { profile: 'Your profile' } } })
  // buildApp's /admin route requires `admin`.
  const res = await tokenRequest(app, { ...RIGHT, username: 'admin', password: 'admin-password', scope: 'admin' })
  t.equal(res.statusCode, 200)
  t.notOk('scope' in res.json(), 'granted as asked')
})

t.test('without `scopes`, any well-formed scope is narrowed to what the user has', async (t) => {
  const app = await buildApp(t, { plugin: { rateLimit: false } })
  const res = await tokenRequest(app, { ...RIGHT, scope: 'profile superuser' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().scope, 'profile')
})
