import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { bearer, buildApp, cheapHash, tokenRequest, type LooseOptions } from './helper.js'
import { hashPassword, type AuthEvent, type ClientRecord } from '../lib/index.js'

/*
 * The client credentials grant (RFC 6749 §4.4), client permissions (`grants`, `scopes`) and the
 * `publicClient` option that keeps credential-less logins open beside registered clients.
 */

const GOOD_LOGIN = Object.freeze({ grant_type: 'password', username: 'user1', password: 'password1' })

async function clients (): Promise<ClientRecord[]> {
  return [
    { id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['client_credentials'], scopes: ['reports', 'audit'] },
    { id: 'web', secretHash: await cheapHash('web-secret') },
    { id: 'mobile' }
  ]
}

function basic (id: string, secret: string): Record<string, string> {
  return { authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64') }
}

async function serve (t: Test, plugin: LooseOptions = {}): Promise<FastifyInstance> {
  return buildApp(t, { plugin: { clients: await clients(), ...plugin } })
}

function claimsOf (res: LightMyRequestResponse): Record<string, unknown> {
  return JSON.parse(Buffer.from((res.json().access_token as string).split('.')[1] as string, 'base64url').toString('utf8'))
}

function assertError (t: Test, res: LightMyRequestResponse, status: number, code: string): void {
  t.equal(res.statusCode, status, code)
  t.equal(res.json().error, code)
  t.same(Object.keys(res.json()).sort(), ['error', 'error_description'])
  t.equal(res.headers['cache-control'], 'no-store')
}

t.test('a confidential client gets a token for itself: sub and client_id are its id, no refresh token (§4.4.3)', async (t) => {
  const events: AuthEvent[] = []
  const app = await serve(t, { refreshTokens: true, onAuthEvent: (e) => events.push(e) })
  const res = await tokenRequest(app, { grant_type: 'client_credentials' }, basic('svc', 'svc-secret'))
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()).sort(), ['access_token', 'expires_in', 'scope', 'token_type'], 'no refresh_token even with refresh tokens on')
  t.match(res.json(), { token_type: 'Bearer', expires_in: 900, scope: 'reports audit' }, 'all of its scopes when it asked for none (§3.3)')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
  t.match(claimsOf(res), { sub: 'svc', client_id: 'svc', scope: 'reports audit' })
  const protectedRes = await app.inject({ url: '/protected', headers: bearer(res.json().access_token) })
  t.same(protectedRes.json(), { sub: 'svc', scope: ['reports', 'audit'] }, 'authenticate takes it')
  t.equal((await app.inject({ url: '/admin', headers: bearer(res.json().access_token) })).statusCode, 403)
  t.match(events, [{ type: 'client.token', clientId: 'svc' }])
})

t.test('credentials in the form work too (§2.3.1), and a narrower scope is granted as asked', async (t) => {
  const app = await serve(t)
  const res = await tokenRequest(app, { grant_type: 'client_credentials', client_id: 'svc', client_secret: 'svc-secret', scope: 'reports' })
  t.equal(res.statusCode, 200)
  t.notOk(res.json().scope, 'the scope asked for was granted, so the answer need not repeat it (§5.1)')
  t.equal(claimsOf(res).scope, 'reports')
})

t.test('a scope the client may not have is invalid_scope, a malformed one too', async (t) => {
  const app = await serve(t)
  for (const scope of ['admin', 'reports admin', 'reports\u0000']) {
    assertError(t, await tokenRequest(app, { grant_type: 'client_credentials', scope }, basic('svc', 'svc-secret')), 400, 'invalid_scope')
  }
})

t.test('a client without scopes gets a token without scope', async (t) => {
  const app = await buildApp(t, { plugin: { clients: [{ id: 'bare', secretHash: await cheapHash('bare-secret'), grants: ['client_credentials'] }] } })
  const res = await tokenRequest(app, { grant_type: 'client_credentials' }, basic('bare', 'bare-secret'))
  t.equal(res.statusCode, 200)
  t.notOk(res.json().scope)
  t.notOk(claimsOf(res).scope)
})

t.test('a confidential client not allowed the grant is unauthorized_client', async (t) => {
  const app = await serve(t, { publicClient: true })
  assertError(t, await tokenRequest(app, { grant_type: 'client_credentials' }, basic('web', 'web-secret')), 400, 'unauthorized_client')
})

t.test('a client that did not authenticate is 401 invalid_client with a Basic challenge (§4.4.2, §5.2)', async (t) => {
  const app = await serve(t, { publicClient: true })
  const cases: Array<[string, Record<string, string>]> = [
    ['a listed public client', { client_id: 'mobile' }],
    ['the default public client by its id (publicClient)', { client_id: 'public' }],
    ['the default public client, no credentials at all (publicClient)', {}]
  ]
  for (const [name, fields] of cases) {
    t.test(name, async (t) => {
      const res = await tokenRequest(app, { grant_type: 'client_credentials', ...fields })
      assertError(t, res, 401, 'invalid_client')
      t.equal(res.json().error_description, 'Client authentication is required')
      t.match(res.headers['www-authenticate'], /^Basic realm="[^"]+", charset="UTF-8"$/)
    })
  }
  // The password grant stays open to the same requests: only client_credentials needs a secret.
  t.equal((await tokenRequest(app, GOOD_LOGIN)).statusCode, 200)
  t.equal((await tokenRequest(app, { ...GOOD_LOGIN, client_id: 'mobile' })).statusCode, 200)
})

t.test('a client limited to client_credentials may not log users in or refresh', async (t) => {
  const app = await serve(t, { refreshTokens: true })
  assertError(t, await tokenRequest(app, GOOD_LOGIN, basic('svc', 'svc-secret')), 400, 'unauthorized_client')
  assertError(t, await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: 'x' }, basic('svc', 'svc-secret')), 400, 'unauthorized_client')
  // A client without a `grants` list keeps what every client could do before.
  const login = await tokenRequest(app, GOOD_LOGIN, basic('web', 'web-secret'))
  t.equal(login.statusCode, 200)
  const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: login.json().refresh_token }, basic('web', 'web-secret'))
  t.equal(refreshed.statusCode, 200)
})

t.test('bad client credentials are 401 invalid_client with a Basic challenge (§5.2), by header or form', async (t) => {
  const events: AuthEvent[] = []
  const app = await serve(t, { onAuthEvent: (e) => events.push(e) })
  for (const [fields, headers] of [
    [{}, basic('svc', 'wrong')],
    [{ client_id: 'svc', client_secret: 'wrong' }, {}],
    [{}, basic('nobody', 'svc-secret')],
    [{ client_id: 'svc' }, {}]
  ] as Array<[Record<string, string>, Record<string, string>]>) {
    const res = await tokenRequest(app, { grant_type: 'client_credentials', ...fields }, headers)
    assertError(t, res, 401, 'invalid_client')
    t.match(res.headers['www-authenticate'], /^Basic realm="api"/)
  }
  t.equal(events.filter((e) => e.type === 'client.failure').length, 4)
  t.notOk(JSON.stringify(events).includes('svc-secret'))
})

t.test('without a client allowed it, client_credentials is an unsupported grant type', async (t) => {
  const app = await buildApp(t, { plugin: { clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }] } })
  assertError(t, await tokenRequest(app, { grant_type: 'client_credentials' }, basic('web', 'web-secret')), 400, 'unsupported_grant_type')
  const plain = await buildApp(t)
  assertError(t, await tokenRequest(plain, { grant_type: 'client_credentials' }), 400, 'unsupported_grant_type')
})

t.test('the host\'s claims function is for users: a client\'s own token gets none', async (t) => {
  const seen: string[] = []
  const app = await serve(t, { claims: (user) => { seen.push(user.username); return { tenant: 'acme' } } })
  const service = await tokenRequest(app, { grant_type: 'client_credentials' }, basic('svc', 'svc-secret'))
  t.notOk('tenant' in claimsOf(service))
  const user = await tokenRequest(app, GOOD_LOGIN, basic('web', 'web-secret'))
  t.equal(claimsOf(user).tenant, 'acme')
  t.same(seen, ['user1'])
})

t.test('publicClient: requests without client credentials are the default client, as without clients', async (t) => {
  const app = await serve(t, { publicClient: true, refreshTokens: true, revocableAccessTokens: true })
  const login = await tokenRequest(app, GOOD_LOGIN)
  t.equal(login.statusCode, 200)
  t.equal(claimsOf(login).client_id, 'public')
  const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: login.json().refresh_token })
  t.equal(refreshed.statusCode, 200)
  t.equal(claimsOf(refreshed).client_id, 'public')
  const revoked = await tokenRequest(app, { token: refreshed.json().access_token }, {}, '/revoke')
  t.equal(revoked.statusCode, 200)
  t.equal((await app.inject({ url: '/protected', headers: bearer(refreshed.json().access_token) })).statusCode, 401)
  // Credentials that are sent are still checked: a wrong secret is not "no credentials".
  assertError(t, await tokenRequest(app, GOOD_LOGIN, basic('web', 'wrong')), 401, 'invalid_client')
  assertError(t, await tokenRequest(app, { ...GOOD_LOGIN, client_id: 'nobody' }), 401, 'invalid_client')
  // A listed client's refresh token is bound to it (§10.4), not usable as the default client.
  const web = await tokenRequest(app, GOOD_LOGIN, basic('web', 'web-secret'))
  assertError(t, await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: web.json().refresh_token }), 400, 'invalid_grant')
  // A public client that names itself (as OAuth2 libraries do) is the default client too, without a secret only.
  t.equal(claimsOf(await tokenRequest(app, { ...GOOD_LOGIN, client_id: 'public' })).client_id, 'public')
  t.equal(claimsOf(await tokenRequest(app, GOOD_LOGIN, basic('public', ''))).client_id, 'public')
  assertError(t, await tokenRequest(app, { ...GOOD_LOGIN, client_id: 'public', client_secret: 'x' }), 401, 'invalid_client')
})

t.test('without publicClient, every request must still authenticate when clients are set', async (t) => {
  const app = await serve(t)
  assertError(t, await tokenRequest(app, GOOD_LOGIN), 401, 'invalid_client')
})

t.test('the permission fields are checked at registration', async (t) => {
  const secretHash = await cheapHash('svc-secret')
  const cases: Array<[string, LooseOptions, RegExp]> = [
    ['grants that are not a list', { clients: [{ id: 'a', secretHash, grants: 'client_credentials' as never }] }, /grants/],
    ['an unknown grant type', { clients: [{ id: 'a', secretHash, grants: ['implicit' as never] }] }, /grants/],
    ['client_credentials for a public client', { clients: [{ id: 'a', grants: ['client_credentials'] }] }, /public.*client_credentials/],
    ['scopes that are not a list', { clients: [{ id: 'a', secretHash, scopes: 'reports' as never }] }, /scopes/],
    ['a malformed scope name', { clients: [{ id: 'a', secretHash, scopes: ['bad scope'] }] }, /scopes/],
    ['introspect that is not a boolean', { clients: [{ id: 'a', secretHash, introspect: 'yes' as never }] }, /introspect/],
    ['introspect for a public client', { clients: [{ id: 'a', introspect: true }] }, /public.*introspect/],
    ['publicClient that is not a boolean', { clients: [{ id: 'a' }], publicClient: 'yes' as never }, /publicClient/],
    ['publicClient while the default client is listed', { clients: [{ id: 'public', secretHash }], publicClient: true }, /publicClient/],
    ['publicClient while a renamed default client is listed', { clients: [{ id: 'spa' }], defaultClientId: 'spa', publicClient: true }, /publicClient/]
  ]
  for (const [name, plugin, message] of cases) {
    await t.rejects(buildApp(t, { plugin }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message }, name)
  }
})

t.test('an unknown client costs a hash like a known one, so timing does not tell which client ids exist', async (t) => {
  // Real-sized parameters: the difference to find is a whole argon2 run, not noise.
  const params = { memoryCost: 19456, timeCost: 2, parallelism: 1 }
  const app = await buildApp(t, {
    plugin: { password: params, clients: [{ id: 'svc', secretHash: await hashPassword('svc-secret', params), grants: ['client_credentials'] }] }
  })
  async function median (headers: Record<string, string>): Promise<number> {
    const times: number[] = []
    for (let i = 0; i < 5; i++) {
      const start = process.hrtime.bigint()
      const res = await tokenRequest(app, { grant_type: 'client_credentials' }, headers)
      times.push(Number(process.hrtime.bigint() - start) / 1e6)
      t.equal(res.statusCode, 401)
    }
    return times.sort((a, b) => a - b)[2] as number
  }
  const known = await median(basic('svc', 'wrong-secret'))
  const unknown = await median(basic('nobody', 'wrong-secret'))
  t.ok(unknown > known / 3, `unknown client ${unknown.toFixed(1)} ms, known client with a wrong secret ${known.toFixed(1)} ms`)
})
