import t from 'tap'
import { Redis } from 'ioredis'
import { buildServer } from '../examples/server.js'
import { FORM, form, NO_REDIS, REDIS_URL, testPrefix } from './helper.js'

/* The example server's refresh tokens, POST /revoke, and its REDIS_URL switch. */

const SECRET = 'example-test-secret-2f9c4e1a7b3d8f0e6c5a'
const QUIET = { LOG_LEVEL: 'silent', JWT_SECRET: SECRET }

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]
type App = Awaited<ReturnType<typeof buildServer>>
const post = (app: App, url: string, fields: Record<string, string>) => app.inject({ method: 'POST', url, headers: FORM, payload: form(fields) })
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

async function session (t: Tap, app: App): Promise<void> {
  const login = await post(app, '/token', { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(login.statusCode, 200)
  const { refresh_token: r1 } = login.json()
  t.type(r1, 'string', 'the password grant returns a refresh token')
  t.equal(login.headers['set-cookie'], undefined, 'and no cookie: browser sessions serve only pages that ask for one')

  const refreshed = await post(app, '/token', { grant_type: 'refresh_token', refresh_token: r1 })
  t.equal(refreshed.statusCode, 200)
  const r2 = refreshed.json().refresh_token
  t.not(r2, r1, 'rotated')
  // r1 again within 10 s: a client retrying a refresh whose answer it lost (RFC 9700 §4.14.2).
  const retried = await post(app, '/token', { grant_type: 'refresh_token', refresh_token: r1 })
  t.equal(retried.statusCode, 200, 'a retry within the grace')
  const { access_token: retriedAccess, refresh_token: r3 } = retried.json()
  t.equal((await app.inject({ url: '/protected', headers: bearer(retriedAccess) })).statusCode, 200)
  t.equal((await post(app, '/token', { grant_type: 'refresh_token', refresh_token: r2 })).json().error, 'invalid_grant', 'the retired r2: reuse')
  t.equal((await post(app, '/token', { grant_type: 'refresh_token', refresh_token: r3 })).json().error, 'invalid_grant', 'the family ended')
  t.equal((await app.inject({ url: '/protected', headers: bearer(retriedAccess) })).statusCode, 401, 'and its access tokens with it')

  const second = await post(app, '/token', { grant_type: 'password', username: 'user1', password: 'password1' })
  const access = second.json().access_token

  t.equal((await app.inject({ url: '/protected', headers: bearer(access) })).statusCode, 200)
  const revoked = await post(app, '/revoke', { token: access })
  t.equal(revoked.statusCode, 200)
  t.same(revoked.json(), {}, 'an empty JSON object')
  t.equal((await app.inject({ url: '/protected', headers: bearer(access) })).statusCode, 401, 'revocable access tokens are on')
}

t.test('refresh tokens, rotation and POST /revoke, in memory', async (t) => {
  const app = await buildServer(QUIET)
  t.teardown(() => app.close())
  await session(t, app)
})

t.test('REDIS_URL switches the example to the Redis store', { skip: NO_REDIS }, async (t) => {
  const prefix = testPrefix()
  const redis = new Redis(REDIS_URL as string)
  t.teardown(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const app = await buildServer({ ...QUIET, REDIS_URL, REDIS_PREFIX: prefix })
  t.teardown(() => app.close())
  await session(t, app)
  t.ok((await redis.keys(`${prefix}*`)).length > 0, 'its state is in Redis')

  // A second instance on the same Redis sees the first one's revocations.
  const other = await buildServer({ ...QUIET, REDIS_URL, REDIS_PREFIX: prefix })
  t.teardown(() => other.close())
  const { access_token: access } = (await post(app, '/token', { grant_type: 'password', username: 'admin', password: 'admin-password' })).json()
  await post(app, '/revoke', { token: access })
  t.equal((await other.inject({ url: '/admin', headers: bearer(access) })).statusCode, 401)
})

t.test('an unreachable REDIS_URL stops the start with an error', async (t) => {
  await t.rejects(buildServer({ ...QUIET, REDIS_URL: 'redis://127.0.0.1:1' }))
})
