import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp, tokenRequest, cheapHash } from './helper.js'
import type { AuthEvent, ClientRecord } from '../lib/index.js'

// The `clients` option: client authentication at the token endpoint (RFC 6749 §2.3.1, §3.2.1, §4.3.2).

const GOOD = Object.freeze({ grant_type: 'password', username: 'user1', password: 'password1' })

async function clients (): Promise<ClientRecord[]> {
  return [{ id: 'web', secretHash: await cheapHash('web-secret') }, { id: 'mobile' }]
}

/** HTTP Basic credentials, encoded as RFC 6749 §2.3.1 says: form-urlencode, then base64. */
function basic (id: string, secret: string, encode = true): Record<string, string> {
  const enc = (value: string): string => encode ? new URLSearchParams([['', value]]).toString().slice(1) : value
  return { authorization: 'Basic ' + Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64') }
}

function clientIdOf (res: LightMyRequestResponse): unknown {
  const token = res.json().access_token as string
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')).client_id
}

/** RFC 6749 §5.2: 401 invalid_client with a `WWW-Authenticate` challenge for the Basic scheme. */
function assertInvalidClient (t: Test, res: LightMyRequestResponse, realm = 'api'): void {
  t.equal(res.statusCode, 401)
  t.same(Object.keys(res.json()).sort(), ['error', 'error_description'])
  t.equal(res.json().error, 'invalid_client')
  t.match(res.headers['www-authenticate'], new RegExp(`^Basic realm="${realm}"`))
  t.equal(res.headers['cache-control'], 'no-store')
}

t.test('a confidential client by HTTP Basic gets a token bound to it', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients() } })
  const res = await tokenRequest(app, GOOD, basic('web', 'web-secret'))
  t.equal(res.statusCode, 200)
  t.equal(res.json().token_type, 'Bearer')
  t.equal(clientIdOf(res), 'web')
})

t.test('the Basic scheme name is case-insensitive', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients() } })
  const header = basic('web', 'web-secret').authorization as string
  const res = await tokenRequest(app, GOOD, { authorization: header.replace('Basic', 'bAsIc') })
  t.equal(res.statusCode, 200)
  t.equal(clientIdOf(res), 'web')
})

t.test('a confidential client by form client_id and client_secret gets a token', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients() } })
  const res = await tokenRequest(app, { ...GOOD, client_id: 'web', client_secret: 'web-secret' })
  t.equal(res.statusCode, 200)
  t.equal(clientIdOf(res), 'web')
})

t.test('failed client authentication is 401 invalid_client with WWW-Authenticate: Basic', async (t) => {
  const cases: Array<[string, Record<string, string>, Record<string, string>]> = [
    ['a wrong secret by Basic', {}, basic('web', 'wrong-secret')],
    ['a wrong secret by form', { client_id: 'web', client_secret: 'wrong-secret' }, {}],
    ['an unknown client by Basic', {}, basic('desktop', 'web-secret')],
    ['an unknown client by form', { client_id: 'desktop', client_secret: 'web-secret' }, {}],
    ['an unknown client by form without a secret', { client_id: 'desktop' }, {}],
    ['no credentials', {}, {}],
    ['a secret without a client_id', { client_secret: 'web-secret' }, {}],
    ['a confidential client without its secret (form)', { client_id: 'web' }, {}],
    ['a confidential client without its secret (Basic)', {}, basic('web', '')],
    ['a public client sending a secret (form)', { client_id: 'mobile', client_secret: 'anything' }, {}],
    ['a public client sending a secret (Basic)', {}, basic('mobile', 'anything')]
  ]
  for (const [name, fields, headers] of cases) {
    t.test(name, async (t) => {
      const events: AuthEvent[] = []
      const app = await buildApp(t, { plugin: { clients: await clients(), onAuthEvent: (e) => events.push(e) } })
      assertInvalidClient(t, await tokenRequest(app, { ...GOOD, ...fields }, headers))
      t.match(events, [{ type: 'client.failure', ip: '127.0.0.1' }])
      const text = JSON.stringify(events)
      for (const secret of ['web-secret', 'wrong-secret', 'anything']) t.notOk(text.includes(secret), `no ${secret} in the event`)
    })
  }
})

t.test('the challenge names the configured realm', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients(), realm: 'my-realm' } })
  assertInvalidClient(t, await tokenRequest(app, GOOD), 'my-realm')
})

t.test('client authentication comes before the grant is looked at', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients() } })
  assertInvalidClient(t, await tokenRequest(app, { ...GOOD, password: 'wrong', grant_type: 'nonsense' }))
  const res = await tokenRequest(app, { ...GOOD, password: 'wrong' }, basic('web', 'web-secret'))
  t.equal(res.statusCode, 400)
  t.equal(res.json().error, 'invalid_grant', 'an authenticated client still needs the right password')
})

t.test('a public client is known by its id alone', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients() } })
  const byForm = await tokenRequest(app, { ...GOOD, client_id: 'mobile' })
  t.equal(byForm.statusCode, 200)
  t.equal(clientIdOf(byForm), 'mobile')
  const byBasic = await tokenRequest(app, GOOD, basic('mobile', ''))
  t.equal(byBasic.statusCode, 200)
  t.equal(clientIdOf(byBasic), 'mobile')
})

t.test('Basic and credentials in the body at once is invalid_request', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients() } })
  const bodies: Array<Record<string, string>> = [{ client_secret: 'web-secret' }, { client_id: 'mobile' }, { client_id: 'web', client_secret: 'web-secret' }]
  for (const fields of bodies) {
    const res = await tokenRequest(app, { ...GOOD, ...fields }, basic('web', 'web-secret'))
    t.equal(res.statusCode, 400)
    t.equal(res.json().error, 'invalid_request')
    t.equal(res.headers['cache-control'], 'no-store')
  }
  // The same client_id in the body as in the header says nothing new.
  const same = await tokenRequest(app, { ...GOOD, client_id: 'web' }, basic('web', 'web-secret'))
  t.equal(same.statusCode, 200)
  t.equal(clientIdOf(same), 'web')
})

t.test('two Authorization headers are invalid_request, whichever comes first', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients(), refreshTokens: true } })
  const right = basic('web', 'web-secret').authorization as string
  const wrong = basic('web', 'wrong-secret').authorization as string
  for (const pair of [[right, wrong], [wrong, right], [right, right]]) {
    // Node keeps only the first in request.headers: the second is in the raw list alone.
    const headers = { authorization: pair as unknown as string }
    for (const res of [
      await tokenRequest(app, GOOD, headers),
      await app.inject({ method: 'POST', url: '/revoke', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=anything' })
    ]) {
      t.equal(res.statusCode, 400)
      t.same(res.json(), { error: 'invalid_request', error_description: 'Only one Authorization header is allowed' })
      t.equal(res.headers['cache-control'], 'no-store')
    }
  }
  t.equal((await tokenRequest(app, GOOD, { authorization: right })).statusCode, 200, 'one header still works')
})

t.test('malformed Basic credentials are 401 invalid_client', async (t) => {
  const app = await buildApp(t, { plugin: { clients: await clients() } })
  const b64 = (text: string): string => Buffer.from(text).toString('base64')
  for (const authorization of [
    'Basic',
    'Basic !!!not-base64!!!',
    `Basic ${b64('web')}`, // no colon
    `Basic ${b64(':web-secret')}`, // no client id
    `Basic ${b64('web%ZZ:web-secret')}`, // bad percent-encoding
    `Basic ${b64('web:web-secret')} trailing`,
    `Bearer ${b64('web:web-secret')}`, // another scheme
    'Digest username="web"'
  ]) {
    assertInvalidClient(t, await tokenRequest(app, GOOD, { authorization }))
  }
})

t.test('Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)', async (t) => {
  const special = [{ id: 'my:client+1', secretHash: await cheapHash('p+s s:%/é') }]
  const app = await buildApp(t, { plugin: { clients: special } })
  // my%3Aclient%2B1 : p%2Bs+s%3A%25%2F%C3%A9
  const res = await tokenRequest(app, GOOD, basic('my:client+1', 'p+s s:%/é'))
  t.equal(res.statusCode, 200)
  t.equal(clientIdOf(res), 'my:client+1')
  // The raw, unencoded form is not the same credentials.
  const raw = await tokenRequest(app, GOOD, basic('my:client+1', 'p+s s:%/é', false))
  assertInvalidClient(t, raw)
  // A '+' decodes to a space, as in any form.
  const spaced = [{ id: 'a b', secretHash: await cheapHash('c d') }]
  const app2 = await buildApp(t, { plugin: { clients: spaced } })
  const plus = await tokenRequest(app2, GOOD, { authorization: 'Basic ' + Buffer.from('a+b:c+d').toString('base64') })
  t.equal(plus.statusCode, 200)
  t.equal(clientIdOf(plus), 'a b')
})

t.test('without the clients option', async (t) => {
  t.test('the client_id claim is "public"', async (t) => {
    const app = await buildApp(t)
    const res = await tokenRequest(app, GOOD)
    t.equal(res.statusCode, 200)
    t.equal(clientIdOf(res), 'public')
  })

  t.test('the client_id claim is defaultClientId when set', async (t) => {
    const app = await buildApp(t, { plugin: { defaultClientId: 'spa' } })
    t.equal(clientIdOf(await tokenRequest(app, GOOD)), 'spa')
  })

  t.test('a client_id in the form does not change the claim', async (t) => {
    const app = await buildApp(t)
    t.equal(clientIdOf(await tokenRequest(app, { ...GOOD, client_id: 'web' })), 'public')
  })

  // As the README's `defaultClientId` says: no client authentication, so nothing a client sends
  // as credentials is checked, and nothing it sends ends up in the token.
  t.test('client credentials are not checked, in HTTP Basic or the form', async (t) => {
    const app = await buildApp(t)
    for (const [name, form, headers] of [
      ['Basic with a secret', GOOD, basic('web', 'any-secret')],
      ['Basic that is not base64', GOOD, { authorization: 'Basic !!!' }],
      ['another scheme', GOOD, { authorization: 'Digest username="web"' }],
      ['client_id and client_secret in the form', { ...GOOD, client_id: 'web', client_secret: 'any-secret' }, {}],
      ['client_secret alone', { ...GOOD, client_secret: 'any-secret' }, {}]
    ] as const) {
      const res = await tokenRequest(app, form, headers)
      t.equal(res.statusCode, 200, name)
      t.equal(clientIdOf(res), 'public', name)
    }
  })
})
