import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import tokenAuth, { createMemoryStore, createRedisStore, type AuthStore, type UserRecord } from '../lib/index.js'
import { bearer, buildApp, demoUsers, forge, NO_REDIS, redisClient, SECRET, testPrefix, tokenRequest, validClaims, VALID_HEADER, type BuildOptions } from './helper.js'

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

/*
 * The races: a login or refresh whose credential check began before revokeUserTokens returned.
 * Hooks of the host's own put the revocation in the middle of the request: `findUser` (the
 * credential check of a login, and of a refresh, which looks the user up again) and `claims`
 * (after a refresh has rotated its token, just before the access token is signed).
 */
async function racingApp (tt: Tap, store: AuthStore, plugin: BuildOptions['plugin'] = {}) {
  const users = await demoUsers()
  const race: { during?: 'findUser' | 'claims' } = {}
  const revokeNow = async (point: 'findUser' | 'claims') => {
    if (race.during !== point) return
    race.during = undefined
    await a.revokeUserTokens('user1')
  }
  const a = await app(tt, {
    store,
    findUser: async (username: string): Promise<UserRecord | null> => {
      const user = users.get(username) ?? null
      await revokeNow('findUser')
      return user
    },
    claims: async () => {
      await revokeNow('claims')
      return {}
    },
    ...plugin
  })
  return { a, race }
}

const stores: Array<[string, (tt: Tap) => Promise<AuthStore>, string | false]> = [
  ['the memory store', async () => createMemoryStore(), false],
  ['the Redis store', async (tt) => {
    const prefix = testPrefix()
    return createRedisStore({ client: await redisClient(tt, prefix), prefix })
  }, NO_REDIS]
]

for (const [name, makeStore, skip] of stores) {
  t.test(`log out everywhere is final against a login racing it, with ${name}`, { skip }, async (t) => {
    const { a, race } = await racingApp(t, await makeStore(t))
    race.during = 'findUser'
    const racing = await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' })
    t.equal(racing.statusCode, 400, 'the password checked out, but the user was logged out meanwhile: no session starts')
    t.equal(racing.json().error, 'invalid_grant')
    t.equal(race.during, undefined, 'the revocation did run inside the login')

    const after = await login(a)
    t.equal(await status(a, after.access_token), 200, 'a login after the revocation works')
    t.equal((await refreshWith(a, after.refresh_token)).statusCode, 200)

    // Without refresh tokens the login is answered, but its access token is dead on arrival.
    const { a: plain, race: plainRace } = await racingApp(t, await makeStore(t), { refreshTokens: false })
    plainRace.during = 'findUser'
    const token = (await login(plain)).access_token
    t.equal(await status(plain, token), 401, 'the access token of the racing login is refused')
    t.equal(await status(plain, (await login(plain)).access_token), 200)
  })

  t.test(`log out everywhere is final against a refresh racing it, with ${name}`, { skip }, async (t) => {
    const { a, race } = await racingApp(t, await makeStore(t))
    // In findUser, before the token is rotated: the rotation finds the family gone.
    const first = await login(a)
    race.during = 'findUser'
    const refused = await refreshWith(a, first.refresh_token)
    t.equal(race.during, undefined, 'the revocation did run inside the refresh')
    t.equal(refused.statusCode, 400)
    t.equal(refused.json().error, 'invalid_grant')
    t.equal(await status(a, first.access_token), 401)

    // In claims, after the rotation: the answer goes out, and nothing in it works.
    const second = await login(a)
    race.during = 'claims'
    const racing = await refreshWith(a, second.refresh_token)
    t.equal(race.during, undefined, 'the revocation did run inside the refresh')
    t.equal(racing.statusCode, 200, 'already past its rotation')
    t.equal(await status(a, racing.json().access_token), 401, 'its access token is refused')
    t.equal((await refreshWith(a, racing.json().refresh_token)).json().error, 'invalid_grant', 'its refresh token is dead')
    t.equal(await status(a, second.access_token), 401, 'and the session\'s older access token')
    t.equal(await status(a, (await login(a)).access_token), 200, 'a login after it works')
  })
}

t.test('an access token without rev_epoch (an older issuer) is judged by its iat, refused when issued before the revocation', async (t) => {
  const a = await app(t)
  const old = forge(VALID_HEADER, validClaims({ iat: Math.floor(Date.now() / 1000) - 2 }))
  t.equal(await status(a, old), 200)
  await a.revokeUserTokens('user1')
  t.equal(await status(a, old), 401)
  const later = forge(VALID_HEADER, validClaims({ iat: Math.floor(Date.now() / 1000) + 2 }))
  t.equal(await status(a, later), 200, 'one issued in a later second is not')
})
