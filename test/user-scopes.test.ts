import t from 'tap'
import { buildApp, cheapHash, demoUsers, tokenRequest } from './helper.js'
import type { UserRecord } from '../lib/index.js'

/*
 * The scopes `findUser` returns are checked before they grant anything: a host that returns a
 * string would otherwise grant every scope it holds as a substring ('admin-ro' holds 'admin'),
 * or, with no scope requested, a scope per character.
 */

const LOGIN = { grant_type: 'password', username: 'user1', password: 'password1' }

t.test('scopes that are not a list of strings are a server error, never a grant', async (t) => {
  for (const [scopes, what] of [['admin-ro', 'a string'], [[1], 'a list of numbers'], [{ 0: 'admin' }, 'an object']] as const) {
    const logs: string[] = []
    const user = { username: 'user1', passwordHash: (await demoUsers()).get('user1')?.passwordHash, scopes } as unknown as UserRecord
    const app = await buildApp(t, {
      plugin: { findUser: () => user },
      server: { logger: { level: 'error', stream: { write: (line: string) => { logs.push(line) } } } }
    })
    for (const fields of [{ ...LOGIN, scope: 'admin' }, LOGIN] as Array<Record<string, string>>) {
      const res = await tokenRequest(app, fields)
      t.equal(res.statusCode, 500, `${what}, scope ${fields.scope ?? 'not'} requested`)
      t.equal(res.json().error, 'server_error')
      t.notOk(res.json().access_token, 'no token')
    }
    t.ok(logs.some((line) => line.includes('FST_TOKEN_AUTH_INVALID_OPTION') && line.includes('scopes')), `${what}: the cause is logged for the host`)
  }
})

t.test('introspection and the refresh grant check them too: a server error, not an active token or a grant', async (t) => {
  const users = await demoUsers()
  const user1 = users.get('user1') as UserRecord
  let scopes: unknown = ['profile']
  const app = await buildApp(t, {
    plugin: {
      refreshTokens: true,
      clients: [{ id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true }],
      publicClient: true,
      findUser: () => ({ ...user1, scopes }) as UserRecord
    },
    server: { logger: false }
  })
  const { refresh_token: refreshToken } = (await tokenRequest(app, LOGIN)).json()
  const rs = { authorization: 'Basic ' + Buffer.from('rs:rs-secret').toString('base64') }
  const active = await tokenRequest(app, { token: refreshToken }, rs, '/introspect')
  t.match(active.json(), { active: true, scope: 'profile' })
  scopes = 'profile-admin'
  const res = await tokenRequest(app, { token: refreshToken }, rs, '/introspect')
  t.equal(res.statusCode, 500)
  t.equal(res.json().error, 'server_error')
  t.notOk(res.json().active, 'no answer that the token is active with scopes made of a string')
  const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: refreshToken })
  t.equal(refreshed.statusCode, 500, 'the refresh grant checks them too')
  t.notOk(refreshed.json().access_token, 'no token')
  scopes = ['profile']
  t.equal((await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: refreshToken })).statusCode, 200, 'the session was not spent by the host\'s error')
})
