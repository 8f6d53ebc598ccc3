import t from 'tap'
import { createMemoryStore, MAX_FAMILIES_PER_USER } from '../lib/index.js'
import { buildApp, tokenRequest } from './helper.js'

/*
 * One account's credentials and a loop of logins: each login starts a session (a refresh
 * family). Unbounded, they would fill the memory store's table of sessions, and every login of
 * every user would be refused (503) until they idled out. The store keeps at most
 * MAX_FAMILIES_PER_USER per user: a new one ends the one idle the longest.
 */
t.test('a loop of logins by one account neither fills the store nor ends anyone else\'s session', async (t) => {
  // Room for the cap and a little more, so that an uncapped store would be full within the loop.
  const store = createMemoryStore({ maxEntries: MAX_FAMILIES_PER_USER + 20 })
  const app = await buildApp(t, { plugin: { refreshTokens: true, rateLimit: false, store } })
  const refreshOf = async (username: string, password: string): Promise<string> => {
    const res = await tokenRequest(app, { grant_type: 'password', username, password })
    t.equal(res.statusCode, 200, `login of ${username}`)
    return res.json().refresh_token
  }
  const neighbour = await refreshOf('admin', 'admin-password')
  const first = await refreshOf('user1', 'password1')
  let last = first
  for (let i = 0; i < 2 * MAX_FAMILIES_PER_USER; i++) last = await refreshOf('user1', 'password1')

  const refresh = async (token: string) => await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: token })
  const ended = await refresh(first)
  t.equal(ended.statusCode, 400, 'the session idle the longest ended')
  t.equal(ended.json().error, 'invalid_grant')
  t.equal((await refresh(last)).statusCode, 200, 'the latest session works')
  t.equal((await refresh(neighbour)).statusCode, 200, 'another user\'s session was not pushed out')
  t.equal((await tokenRequest(app, { grant_type: 'password', username: 'admin', password: 'admin-password' })).statusCode, 200,
    'and another user can still log in')
})
