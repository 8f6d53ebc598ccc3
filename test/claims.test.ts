import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { bearer, buildApp, login, tokenRequest } from './helper.js'
import type { UserRecord } from '../lib/index.js'

// The `claims` option: extra claims in the access token, back on `request.user.claims`.

function decode (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
}

t.test('extra claims reach the token and request.user.claims', async (t) => {
  const seen: Array<[string, string]> = []
  const app = await buildApp(t, {
    plugin: {
      claims: async (user: UserRecord, request: FastifyRequest) => {
        seen.push([user.username, request.url])
        return { tenant: `tenant-of-${user.username}`, roles: ['reader'] }
      }
    },
    // Added before the plugin, so the decorator is looked up when the request comes.
    before: (app) => {
      app.get('/claims', { preHandler: async (request, reply) => { await app.authenticate(request, reply) } },
        async (request) => request.user.claims)
    }
  })
  const token = await login(app)
  t.same(seen, [['user1', '/token']], 'called with the user record and the token request')
  const claims = decode(token)
  t.equal(claims.tenant, 'tenant-of-user1')
  t.same(claims.roles, ['reader'])
  t.equal(claims.sub, 'user1', 'the registered claims are still the plugin\'s')

  const res = await app.inject({ url: '/claims', headers: bearer(token) })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { tenant: 'tenant-of-user1', roles: ['reader'], sub: 'user1', client_id: 'public' })
})

t.test('a claims function that returns a registered claim or no object is a server error, not a token', async (t) => {
  for (const [returned, what] of [
    [{ sub: 'admin' }, 'sub'],
    [{ scope: 'admin' }, 'scope'],
    [{ exp: 9999999999 }, 'exp'],
    [{ client_id: 'other' }, 'client_id'],
    [null, 'null'],
    [['tenant'], 'an array'],
    ['tenant', 'a string']
  ] as const) {
    const logs: string[] = []
    const app = await buildApp(t, {
      plugin: { claims: () => returned as never },
      server: { logger: { level: 'error', stream: { write: (line: string) => { logs.push(line) } } } }
    })
    const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
    t.equal(res.statusCode, 500, what)
    t.equal(res.json().error, 'server_error')
    t.notOk(res.json().access_token)
    t.ok(logs.some((line) => line.includes('FST_TOKEN_AUTH_INVALID_OPTION')), `${what}: the cause is logged for the host`)
  }
})

t.test('claims must be a function', async (t) => {
  await t.rejects(buildApp(t, { register: { claims: { tenant: 't1' } } }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message: /option "claims"/ })
})
