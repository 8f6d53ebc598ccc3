import t from 'tap'
import Fastify from 'fastify'
import cors from '@fastify/cors'
import tokenAuth from '../lib/index.js'
import { CHEAP, SECRET, demoUsers, form } from './helper.js'

/*
 * A browser app on another origin, with @fastify/cors set up as docs/browsers-and-cors.md shows:
 * the calls to /token, /revoke and a protected route, and the preflights a browser sends before
 * those that carry a header of the app's own (Authorization, X-Token-Delivery).
 */

const ORIGIN = 'https://app.example.com'

async function buildCorsApp (t: Tap) {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  // As in the docs: cors first, so its hook runs before every route of the plugin.
  await app.register(cors, {
    origin: [ORIGIN],
    methods: ['GET', 'POST'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['WWW-Authenticate', 'Retry-After'],
    maxAge: 600
  })
  await app.register(tokenAuth, {
    secret: SECRET,
    findUser: async (username) => users.get(username) ?? null,
    password: { ...CHEAP },
    refreshTokens: true
  })
  app.get('/me', { preHandler: app.authenticate }, async (request) => ({ sub: request.user.sub }))
  await app.ready()
  return app
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

function preflight (method: string, headers: string) {
  return { origin: ORIGIN, 'access-control-request-method': method, 'access-control-request-headers': headers }
}

t.test('POST /token from an allowed origin: its preflight (needed only with a header of the app\'s own), then the call', async (t) => {
  const app = await buildCorsApp(t)
  const pre = await app.inject({ method: 'OPTIONS', url: '/token', headers: preflight('POST', 'content-type') })
  t.equal(pre.statusCode, 204)
  t.equal(pre.headers['access-control-allow-origin'], ORIGIN)
  t.match(pre.headers['access-control-allow-methods'], /POST/)
  t.match(pre.headers['access-control-allow-headers'], /Content-Type/)

  const res = await app.inject({
    method: 'POST',
    url: '/token',
    headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ grant_type: 'password', username: 'user1', password: 'password1' })
  })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['access-control-allow-origin'], ORIGIN)
  t.equal(res.headers['cache-control'], 'no-store')
  const { access_token: accessToken, refresh_token: refreshToken } = res.json()

  // An error answer carries the CORS headers too, so the browser app can read why.
  const bad = await app.inject({
    method: 'POST',
    url: '/token',
    headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ grant_type: 'password', username: 'user1', password: 'wrong' })
  })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error, 'invalid_grant')
  t.equal(bad.headers['access-control-allow-origin'], ORIGIN)

  t.test('a protected route: preflight for Authorization, then the call', async (t) => {
    const pre = await app.inject({ method: 'OPTIONS', url: '/me', headers: preflight('GET', 'authorization') })
    t.equal(pre.statusCode, 204)
    t.match(pre.headers['access-control-allow-headers'], /Authorization/)
    const me = await app.inject({ url: '/me', headers: { origin: ORIGIN, authorization: `Bearer ${accessToken}` } })
    t.equal(me.statusCode, 200)
    t.same(me.json(), { sub: 'user1' })
    t.equal(me.headers['access-control-allow-origin'], ORIGIN)
    const denied = await app.inject({ url: '/me', headers: { origin: ORIGIN } })
    t.equal(denied.statusCode, 401)
    t.match(denied.headers['access-control-expose-headers'], /WWW-Authenticate/, 'the challenge is readable by the app')
  })

  t.test('/revoke: preflight, then the call', async (t) => {
    const pre = await app.inject({ method: 'OPTIONS', url: '/revoke', headers: preflight('POST', 'content-type') })
    t.equal(pre.statusCode, 204)
    t.equal(pre.headers['access-control-allow-origin'], ORIGIN)
    const res = await app.inject({
      method: 'POST',
      url: '/revoke',
      headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      payload: form({ token: refreshToken })
    })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['access-control-allow-origin'], ORIGIN)
    const refreshed = await app.inject({
      method: 'POST',
      url: '/token',
      headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      payload: form({ grant_type: 'refresh_token', refresh_token: refreshToken })
    })
    t.equal(refreshed.json().error, 'invalid_grant', 'the refresh token is revoked')
  })
})

t.test('another origin gets no CORS headers, so the browser refuses to hand over the answer', async (t) => {
  const app = await buildCorsApp(t)
  const pre = await app.inject({ method: 'OPTIONS', url: '/token', headers: { ...preflight('POST', 'content-type'), origin: 'https://evil.example' } })
  t.notOk(pre.headers['access-control-allow-origin'])
  // A form POST is a simple request, sent without a preflight: it reaches the endpoint and is
  // answered (the docs say so); only the CORS header that would let the page read it is missing.
  const simple = await app.inject({
    method: 'POST',
    url: '/token',
    headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    payload: form({ grant_type: 'password', username: 'user1', password: 'password1' })
  })
  t.equal(simple.statusCode, 200, 'the login is checked like any other')
  t.notOk(simple.headers['access-control-allow-origin'], 'the page may not read it')
})

t.test('without @fastify/cors, OPTIONS /token is 405 with Allow: POST and no CORS headers', async (t) => {
  const users = await demoUsers()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, { secret: SECRET, findUser: async (username) => users.get(username) ?? null, password: { ...CHEAP } })
  const res = await app.inject({ method: 'OPTIONS', url: '/token', headers: preflight('POST', 'content-type') })
  t.equal(res.statusCode, 405)
  t.equal(res.headers.allow, 'POST')
  t.equal(res.json().error, 'invalid_request')
  t.notOk(res.headers['access-control-allow-origin'])
})
