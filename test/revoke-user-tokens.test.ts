import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import tokenAuth, { createMemoryStore } from '../lib/index.js'
import { bearer, buildApp, SECRET, tokenRequest, type BuildOptions } from './helper.js'

/* `app.revokeUserTokens(userId)`: "log out everywhere", e.g. after a password change. */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

async function app (tt: Tap, plugin: BuildOptions['plugin'] = {}) {
  return buildApp(tt, { plugin: { refreshTokens: true, revocableAccessTokens: true, rateLimit: false, loginThrottle: false, ...plugin } })
}

async function login (a: FastifyInstance, username = 'user1', password = 'password1') {
  const res = await tokenRequest(a, { grant_type: 'password', username, password })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  return res.json() as { access_token: string, refresh_token: string }
}

const refreshWith = (a: FastifyInstance, token: string) => tokenRequest(a, { grant_type: 'refresh_token', refresh_token: token })
const status = async (a: FastifyInstance, token: string) => (await a.inject({ url: '/protected', headers: bearer(token) })).statusCode

t.test('every refresh family and every access token of the user ends; other users keep theirs', async (t) => {
  const a = await app(t)
  const phone = await login(a)
  const laptop = await login(a)
  const admin = await login(a, 'admin', 'admin-password')

  await a.revokeUserTokens('user1')
  t.equal((await refreshWith(a, phone.refresh_token)).json().error, 'invalid_grant')
  t.equal((await refreshWith(a, laptop.refresh_token)).json().error, 'invalid_grant')
  t.equal(await status(a, phone.access_token), 401)
  t.equal(await status(a, laptop.access_token), 401)
  t.equal(await status(a, admin.access_token), 200, 'another user')
  t.equal((await refreshWith(a, admin.refresh_token)).statusCode, 200)
})

t.test('a login right after the revocation works at once, in the same second', async (t) => {
  const a = await app(t)
  const before = await login(a)
  await a.revokeUserTokens('user1')
  const after = await login(a)
  t.equal(await status(a, before.access_token), 401)
  t.equal(await status(a, after.access_token), 200, 'not caught by the revocation, however close in time')
  const refreshed = await refreshWith(a, after.refresh_token)
  t.equal(refreshed.statusCode, 200)
  t.equal(await status(a, refreshed.json().access_token), 200)
})

t.test('users are named by their token\'s sub: the id when the record has one', async (t) => {
  const a = await app(t)
  const admin = await login(a, 'admin', 'admin-password')
  await a.revokeUserTokens('admin')
  t.equal(await status(a, admin.access_token), 200, '"admin" is not the sub of a user with id 42')
  await a.revokeUserTokens(42)
  t.equal(await status(a, admin.access_token), 401)
  t.equal((await refreshWith(a, admin.refresh_token)).json().error, 'invalid_grant')
})

t.test('without revocableAccessTokens, refresh families end and access tokens run out their time', async (t) => {
  const a = await app(t, { revocableAccessTokens: false })
  const session = await login(a)
  await a.revokeUserTokens('user1')
  t.equal((await refreshWith(a, session.refresh_token)).json().error, 'invalid_grant')
  t.equal(await status(a, session.access_token), 200, 'documented: short access tokens expire on their own')
})

t.test('a verifying-only instance (no findUser) sharing the store sees revocations', async (t) => {
  const store = createMemoryStore()
  const issuer = await app(t, { store })
  const api = Fastify()
  t.teardown(() => api.close())
  await api.register(tokenAuth, { secret: SECRET, store, revocableAccessTokens: true })
  api.get('/data', { preHandler: api.authenticate }, async () => ({ ok: true }))
  const session = await login(issuer)
  t.equal((await api.inject({ url: '/data', headers: bearer(session.access_token) })).statusCode, 200)
  await issuer.revokeUserTokens('user1')
  t.equal((await api.inject({ url: '/data', headers: bearer(session.access_token) })).statusCode, 401)
  await api.revokeUserTokens('user1')
  t.equal((await api.inject({ url: '/token', method: 'POST' })).statusCode, 404, 'and it serves no token endpoint')
})

t.test('still right for a user whose key was computed long ago, past thousands of other users', async (t) => {
  const a = await app(t)
  const session = await login(a)
  t.equal(await status(a, session.access_token), 200)
  // Past the number of user keys remembered: user1's is computed again, and must come out the same.
  for (let i = 0; i < 10_050; i++) await a.revokeUserTokens(`someone-${i}`)
  t.equal(await status(a, session.access_token), 200, 'not revoked by the others')
  await a.revokeUserTokens('user1')
  t.equal(await status(a, session.access_token), 401)
})
