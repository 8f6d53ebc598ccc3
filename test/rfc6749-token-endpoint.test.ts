import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp, tokenRequest, login, form, bearer, demoUsers, cheapHash, CHEAP, FORM } from './helper.js'
import type { AuthEvent, UserRecord } from '../lib/index.js'

// RFC 6749 §3.2, §4.3, §5.1 and §5.2: the token endpoint as a client sees it.

const GOOD = Object.freeze({ grant_type: 'password', username: 'user1', password: 'password1' })

/** Asserts an RFC 6749 §5.2 error: the status, exactly `{ error, error_description }`, not cacheable. */
function assertOAuthError (t: Test, res: LightMyRequestResponse, status: number, code: string): void {
  t.equal(res.statusCode, status, `status ${status} for ${code}`)
  const body = res.json()
  t.equal(body.error, code)
  t.same(Object.keys(body).sort(), ['error', 'error_description'])
  t.match(body.error_description, /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/, 'RFC 6749 §5.2: error_description characters')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
}

/** The claims of a compact JWS, read without verifying. */
function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8'))
}

/** A `findUser` over the demo users that records every call. */
async function countingFindUser (): Promise<{ calls: string[], findUser: (username: string) => Promise<UserRecord | null> }> {
  const users = await demoUsers()
  const calls: string[] = []
  return {
    calls,
    findUser: async (username) => {
      calls.push(username)
      return users.get(username) ?? null
    }
  }
}

/** A writable that keeps every log line, parsed. */
function logCollector (): { stream: Writable, lines: string[], entries: () => Array<Record<string, any>> } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(...String(chunk).split('\n').filter((line) => line !== ''))
      callback()
    }
  })
  return { stream, lines, entries: () => lines.map((line) => JSON.parse(line)) }
}

t.test('success', async (t) => {
  t.test('the body is exactly access_token, token_type, expires_in and scope, not cacheable', async (t) => {
    const app = await buildApp(t)
    const res = await tokenRequest(app, GOOD)
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(res.headers.pragma, 'no-cache')
    const body = res.json()
    t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type'])
    t.equal(body.token_type, 'Bearer')
    t.equal(body.expires_in, 900)
    t.equal(body.scope, 'profile')
    t.match(body.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/)
    const protectedRes = await app.inject({ url: '/protected', headers: bearer(body.access_token) })
    t.equal(protectedRes.statusCode, 200)
    t.same(protectedRes.json(), { sub: 'user1', scope: ['profile'] })
  })

  t.test('expires_in follows accessTokenTtl and matches the token', async (t) => {
    const app = await buildApp(t, { plugin: { accessTokenTtl: 60 } })
    const body = (await tokenRequest(app, GOOD)).json()
    t.equal(body.expires_in, 60)
    const claims = claimsOf(body.access_token)
    t.equal((claims.exp as number) - (claims.iat as number), 60)
  })

  t.test('sub is the user id when there is one, the username otherwise', async (t) => {
    const app = await buildApp(t)
    t.equal(claimsOf(await login(app, 'admin', 'admin-password')).sub, '42')
    t.equal(claimsOf(await login(app)).sub, 'user1')
  })

  t.test('charset=UTF-8 in the content type is accepted', async (t) => {
    const app = await buildApp(t)
    const res = await tokenRequest(app, GOOD, { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' })
    t.equal(res.statusCode, 200)
    t.equal(res.json().token_type, 'Bearer')
  })

  t.test('unknown parameters are ignored', async (t) => {
    const app = await buildApp(t)
    const res = await tokenRequest(app, { ...GOOD, state: 'xyz', foo: 'bar', client_id: 'someone' })
    t.equal(res.statusCode, 200)
    t.equal(res.json().token_type, 'Bearer')
  })
})

t.test('body format', async (t) => {
  const json = JSON.stringify(GOOD)
  const multipart = Object.entries(GOOD)
    .map(([name, value]) => `--XyZ\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
    .join('') + '--XyZ--\r\n'
  const cases: Array<[string, Record<string, string>, string]> = [
    ['a JSON body', { 'content-type': 'application/json' }, json],
    ['a multipart body', { 'content-type': 'multipart/form-data; boundary=XyZ' }, multipart],
    ['a text/plain body', { 'content-type': 'text/plain' }, form(GOOD)],
    ['a body with no content type', {}, form(GOOD)]
  ]
  for (const [name, headers, payload] of cases) {
    t.test(`${name} is invalid_request`, async (t) => {
      const app = await buildApp(t)
      const res = await app.inject({ method: 'POST', url: '/token', headers, payload })
      assertOAuthError(t, res, 400, 'invalid_request')
      // RFC 6749 §4.3.2: the client is told which encoding the endpoint takes.
      t.match(res.json().error_description, /must be application\/x-www-form-urlencoded/)
    })
  }

  t.test('a form past bodyLimit is still described as too large, not as the wrong encoding', async (t) => {
    const app = await buildApp(t)
    const res = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload: form({ ...GOOD, password: 'x'.repeat(100_000) }) })
    assertOAuthError(t, res, 400, 'invalid_request')
    t.notMatch(res.json().error_description, /x-www-form-urlencoded/)
  })

  t.test('no body at all is invalid_request', async (t) => {
    const app = await buildApp(t)
    assertOAuthError(t, await app.inject({ method: 'POST', url: '/token' }), 400, 'invalid_request')
    assertOAuthError(t, await app.inject({ method: 'POST', url: '/token', headers: FORM }), 400, 'invalid_request')
  })

  t.test('malformed percent-encoding is a client error, not a crash', async (t) => {
    const app = await buildApp(t)
    for (const payload of [
      'grant_type=password&username=%E0%A4%A&password=%',
      'grant_type=password&username=user1&password=%FF%FE%ZZ',
      'grant_type=pass%word&username=user1&password=password1',
      '%%%=%%%&grant_type=password'
    ]) {
      const res = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload })
      t.equal(res.statusCode, 400, payload)
      t.type(res.json().error, 'string')
      t.equal(res.headers['cache-control'], 'no-store')
    }
  })
})

t.test('required, empty, repeated and array-style parameters', async (t) => {
  const cases: Array<[string, string]> = [
    ['grant_type missing', form({ username: 'user1', password: 'password1' })],
    ['username missing', form({ grant_type: 'password', password: 'password1' })],
    ['password missing', form({ grant_type: 'password', username: 'user1' })],
    ['grant_type empty', form({ ...GOOD, grant_type: '' })],
    ['username empty', form({ ...GOOD, username: '' })],
    ['password empty', form({ ...GOOD, password: '' })],
    ['username repeated', form({ ...GOOD, username: ['user1', 'admin'] })],
    ['username repeated with the same value', form({ ...GOOD, username: ['user1', 'user1'] })],
    ['password repeated', form({ ...GOOD, password: ['password1', 'password1'] })],
    ['grant_type repeated', form({ ...GOOD, grant_type: ['password', 'password'] })],
    ['an unknown parameter repeated', form({ ...GOOD, 'x-extra': ['1', '2'] })],
    ['username array-style', 'grant_type=password&username[]=user1&password=password1'],
    ['password array-style', 'grant_type=password&username=user1&password[0]=password1'],
    ['username object-style', 'grant_type=password&username[a]=user1&password=password1']
  ]
  for (const [name, payload] of cases) {
    t.test(`${name} is invalid_request`, async (t) => {
      const { calls, findUser } = await countingFindUser()
      const app = await buildApp(t, { plugin: { findUser } })
      const res = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload })
      assertOAuthError(t, res, 400, 'invalid_request')
      t.same(calls, [], 'no user lookup')
    })
  }
})

t.test('grant types other than password are unsupported_grant_type', async (t) => {
  const app = await buildApp(t)
  for (const grantType of ['client_credentials', 'refresh_token', 'authorization_code', 'garbage', 'PASSWORD']) {
    const res = await tokenRequest(app, { ...GOOD, grant_type: grantType })
    assertOAuthError(t, res, 400, 'unsupported_grant_type')
  }
})

t.test('wrong password, unknown user and disabled user get the same invalid_grant answer', async (t) => {
  const app = await buildApp(t)
  const answers = await Promise.all([
    tokenRequest(app, { ...GOOD, password: 'wrong-password' }),
    tokenRequest(app, { ...GOOD, username: 'nobody' }),
    tokenRequest(app, { ...GOOD, username: 'disabled-user' })
  ])
  for (const res of answers) assertOAuthError(t, res, 400, 'invalid_grant')
  const [first, ...rest] = answers.map((res) => ({ status: res.statusCode, body: res.body, length: res.headers['content-length'] }))
  for (const other of rest) t.same(other, first)
})

t.test('an unknown user still costs an argon2 verify (it goes through the hashing pool)', async (t) => {
  // One verify at a time and one waiting: a burst of unknown users overflows the pool, which
  // shows that each of them runs the dummy verify, as a known user would.
  const app = await buildApp(t, {
    plugin: { password: { memoryCost: 19456, timeCost: 2, maxConcurrent: 1, maxQueue: 1 }, loginThrottle: false }
  })
  const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => tokenRequest(app, { ...GOOD, username: `ghost${i}` })))
  const busy = answers.filter((res) => res.statusCode === 503)
  t.ok(busy.length > 0, 'some got 503')
  for (const res of busy) {
    assertOAuthError(t, res, 503, 'temporarily_unavailable')
    t.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After')
  }
  for (const res of answers.filter((r) => r.statusCode !== 503)) assertOAuthError(t, res, 400, 'invalid_grant')
})

t.test('limits checked before any lookup or hashing', async (t) => {
  t.test('a body over the default 4096 bytes is invalid_request', async (t) => {
    const { calls, findUser } = await countingFindUser()
    const app = await buildApp(t, { plugin: { findUser } })
    const base = form({ ...GOOD, pad: '' }).length
    const atLimit = await tokenRequest(app, { ...GOOD, pad: 'x'.repeat(4096 - base) })
    t.equal(atLimit.statusCode, 200, 'exactly 4096 bytes is fine')
    t.equal(calls.length, 1)
    const over = await tokenRequest(app, { ...GOOD, pad: 'x'.repeat(4097 - base) })
    assertOAuthError(t, over, 400, 'invalid_request')
    t.equal(calls.length, 1, 'findUser not called for the large body')
  })

  t.test('a custom bodyLimit applies', async (t) => {
    const { calls, findUser } = await countingFindUser()
    const app = await buildApp(t, { plugin: { findUser, bodyLimit: 200 } })
    const base = form({ ...GOOD, pad: '' }).length
    t.equal((await tokenRequest(app, { ...GOOD, pad: 'x'.repeat(200 - base) })).statusCode, 200)
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, pad: 'x'.repeat(201 - base) }), 400, 'invalid_request')
    t.equal(calls.length, 1)
  })

  t.test('a password over password.maxLength is invalid_request, with no lookup and no hashing', async (t) => {
    const { calls, findUser } = await countingFindUser()
    const events: AuthEvent[] = []
    const app = await buildApp(t, {
      plugin: { findUser, password: { ...CHEAP, maxLength: 16 }, onAuthEvent: (e) => events.push(e) }
    })
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, password: 'p'.repeat(17) }), 400, 'invalid_request')
    t.same(calls, [])
    t.same(events, [], 'not even counted as a failed login')
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, password: 'p'.repeat(16) }), 400, 'invalid_grant')
    t.same(calls, ['user1'], 'a password at the limit is checked')
  })

  t.test('the default password cap is 1024 characters', async (t) => {
    const { calls, findUser } = await countingFindUser()
    const app = await buildApp(t, { plugin: { findUser } })
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, password: 'p'.repeat(1025) }), 400, 'invalid_request')
    t.same(calls, [])
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, password: 'p'.repeat(1024) }), 400, 'invalid_grant')
    t.same(calls, ['user1'])
  })

  t.test('a username over 256 characters is invalid_request', async (t) => {
    const { calls, findUser } = await countingFindUser()
    const app = await buildApp(t, { plugin: { findUser } })
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, username: 'u'.repeat(257) }), 400, 'invalid_request')
    t.same(calls, [])
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, username: 'u'.repeat(256) }), 400, 'invalid_grant')
    t.equal(calls.length, 1)
  })
})

t.test('methods other than POST get 405 with Allow: POST', async (t) => {
  // A method the host added before the plugin is refused too.
  const app = await buildApp(t, { before: (host) => { host.addHttpMethod('PROPFIND') } })
  // OPTIONS too, rather than a bare 404: without CORS set up by the host only POST is supported.
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'] as const) {
    const res = await app.inject({ method, url: '/token' })
    assertOAuthError(t, res, 405, 'invalid_request')
    t.equal(res.headers.allow, 'POST', method)
  }
  const head = await app.inject({ method: 'HEAD', url: '/token' })
  t.equal(head.statusCode, 405)
  t.equal(head.headers.allow, 'POST')
  // QUERY carries a body: one that is not a form is refused as such, in the same shape.
  assertOAuthError(t, await app.inject({ method: 'QUERY' as 'GET', url: '/token', headers: { 'content-type': 'application/json' }, payload: '{}' }), 400, 'invalid_request')
  assertOAuthError(t, await app.inject({ method: 'QUERY' as 'GET', url: '/token', headers: FORM, payload: 'a=1' }), 405, 'invalid_request')
})

t.test('the form parser stays on the token endpoint', async (t) => {
  const app = await buildApp(t, {
    before: (host) => { host.post('/other', async (request) => ({ body: request.body })) }
  })
  const formRes = await app.inject({ method: 'POST', url: '/other', headers: FORM, payload: 'a=1' })
  t.equal(formRes.statusCode, 415, 'the host still refuses forms')
  const jsonRes = await app.inject({ method: 'POST', url: '/other', payload: { a: 1 } })
  t.equal(jsonRes.statusCode, 200, 'the host still parses JSON')
  t.same(jsonRes.json(), { body: { a: 1 } })
  t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
})

t.test('where the endpoint lives', async (t) => {
  t.test('tokenPath moves it', async (t) => {
    const app = await buildApp(t, { plugin: { tokenPath: '/oauth2/token' } })
    t.equal((await tokenRequest(app, GOOD, {}, '/oauth2/token')).statusCode, 200)
    t.equal((await tokenRequest(app, GOOD)).statusCode, 404)
  })

  t.test('the registration prefix applies', async (t) => {
    const app = await buildApp(t, { register: { prefix: '/auth' } })
    const res = await tokenRequest(app, GOOD, {}, '/auth/token')
    t.equal(res.statusCode, 200)
    t.equal((await tokenRequest(app, GOOD)).statusCode, 404)
    const get = await app.inject({ url: '/auth/token' })
    t.equal(get.statusCode, 405)
    // The decorators still reach the host's routes, which are not prefixed.
    const protectedRes = await app.inject({ url: '/protected', headers: bearer(res.json().access_token) })
    t.equal(protectedRes.statusCode, 200)
  })

  t.test('prefix and tokenPath combine', async (t) => {
    const app = await buildApp(t, { register: { prefix: '/auth' }, plugin: { tokenPath: '/oauth2/token' } })
    t.equal((await tokenRequest(app, GOOD, {}, '/auth/oauth2/token')).statusCode, 200)
  })
})

t.test('scope (RFC 6749 §3.3)', async (t) => {
  t.test('none requested: every scope of the user, and scope in the answer', async (t) => {
    const app = await buildApp(t)
    const body = (await tokenRequest(app, { ...GOOD, username: 'admin', password: 'admin-password' })).json()
    t.equal(body.scope, 'profile admin')
    t.equal(claimsOf(body.access_token).scope, 'profile admin')
  })

  t.test('an empty scope counts as none requested', async (t) => {
    const app = await buildApp(t)
    const body = (await tokenRequest(app, { ...GOOD, username: 'admin', password: 'admin-password', scope: '' })).json()
    t.equal(body.scope, 'profile admin')
  })

  t.test('a subset is granted, and scope is left out since it equals the request', async (t) => {
    const app = await buildApp(t)
    const res = await tokenRequest(app, { ...GOOD, username: 'admin', password: 'admin-password', scope: 'profile' })
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.notOk('scope' in body)
    t.equal(claimsOf(body.access_token).scope, 'profile')
    const adminRes = await app.inject({ url: '/admin', headers: bearer(body.access_token) })
    t.equal(adminRes.statusCode, 403, 'the narrowed token cannot reach /admin')
  })

  t.test('the whole set in another order is granted as asked', async (t) => {
    const app = await buildApp(t)
    const body = (await tokenRequest(app, { ...GOOD, username: 'admin', password: 'admin-password', scope: 'admin profile' })).json()
    t.notOk('scope' in body)
    t.equal(claimsOf(body.access_token).scope, 'admin profile')
  })

  t.test('a scope the user lacks is narrowed away, and the answer says so (never an error after a right password)', async (t) => {
    const app = await buildApp(t)
    const partly = await tokenRequest(app, { ...GOOD, scope: 'profile admin' })
    t.equal(partly.statusCode, 200)
    t.equal(partly.json().scope, 'profile', 'RFC 6749 §5.1: scope differs from the request, so it is in the answer')
    t.equal(claimsOf(partly.json().access_token).scope, 'profile')
    const none = await tokenRequest(app, { ...GOOD, scope: 'admin' })
    t.equal(none.statusCode, 200)
    t.equal(none.json().scope, '', 'narrowed to nothing: an empty scope, not silence')
    t.equal((await app.inject({ url: '/admin', headers: bearer(none.json().access_token) })).statusCode, 403)
  })

  t.test('a malformed scope is invalid_scope', async (t) => {
    const app = await buildApp(t)
    for (const scope of ['pro"file', 'pro\\file', 'profile  admin', ' profile', 'profile ', 'prof\tile', 'profilé', 'p'.repeat(1025)]) {
      assertOAuthError(t, await tokenRequest(app, { ...GOOD, scope }), 400, 'invalid_scope')
    }
  })

  t.test('a user with no scopes gets a token without scope', async (t) => {
    const hash = await cheapHash('password1')
    const app = await buildApp(t, { plugin: { findUser: () => ({ username: 'bare', passwordHash: hash }) } })
    const body = (await tokenRequest(app, { ...GOOD, username: 'bare' })).json()
    t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'token_type'])
    t.notOk('scope' in claimsOf(body.access_token))
    const protectedRes = await app.inject({ url: '/protected', headers: bearer(body.access_token) })
    t.same(protectedRes.json(), { sub: 'bare', scope: [] })
  })
})

t.test('a findUser that throws is a 500 server_error that leaks nothing', async (t) => {
  const { stream } = logCollector()
  const app = await buildApp(t, {
    server: { logger: { level: 'fatal', stream } },
    plugin: { findUser: () => { throw new Error('db exploded at 10.0.0.7') } }
  })
  const res = await tokenRequest(app, GOOD)
  assertOAuthError(t, res, 500, 'server_error')
  t.notMatch(res.body, /exploded|10\.0\.0\.7|stack|at /)
})

t.test('a findUser failure does not count as a failed login', async (t) => {
  const users = await demoUsers()
  let fail = true
  const app = await buildApp(t, {
    plugin: {
      loginThrottle: { perUsernameAndIp: { max: 1 }, perUsername: false },
      findUser: (username) => {
        if (fail) throw new Error('down')
        return users.get(username) ?? null
      }
    }
  })
  assertOAuthError(t, await tokenRequest(app, GOOD), 500, 'server_error')
  fail = false
  t.equal((await tokenRequest(app, GOOD)).statusCode, 200, 'the reserved attempt was given back')
})

t.test('throttling answers 429 with Retry-After in the same error shape', async (t) => {
  t.test('per IP on the endpoint', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: { max: 1 } } })
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
    const res = await tokenRequest(app, GOOD)
    assertOAuthError(t, res, 429, 'too_many_requests')
    t.ok(Number(res.headers['retry-after']) >= 1)
  })

  t.test('per username after failed logins, even with the right password', async (t) => {
    const events: AuthEvent[] = []
    const app = await buildApp(t, {
      plugin: { loginThrottle: { perUsernameAndIp: { max: 1 }, perUsername: false }, onAuthEvent: (e) => events.push(e) }
    })
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, password: 'wrong' }), 400, 'invalid_grant')
    const res = await tokenRequest(app, GOOD)
    assertOAuthError(t, res, 429, 'too_many_requests')
    t.ok(Number(res.headers['retry-after']) >= 1)
    t.match(events.at(-1), { type: 'login.throttled', username: 'user1' })
  })
})

t.test('security events', async (t) => {
  t.test('onAuthEvent gets login.success and login.failure with username and IP, never the password', async (t) => {
    const events: AuthEvent[] = []
    const app = await buildApp(t, { plugin: { onAuthEvent: (event) => events.push(event) } })
    const token = await login(app)
    await tokenRequest(app, { ...GOOD, password: 'Wr0ng-S3cret!' })
    await tokenRequest(app, { ...GOOD, username: 'disabled-user' })
    t.match(events, [
      { type: 'login.success', username: 'user1', ip: '127.0.0.1', clientId: 'public' },
      { type: 'login.failure', username: 'user1', ip: '127.0.0.1', reason: 'bad_credentials' },
      { type: 'login.failure', username: 'disabled-user', ip: '127.0.0.1' }
    ])
    t.equal(events.length, 3)
    const text = JSON.stringify(events)
    for (const secret of ['password1', 'Wr0ng-S3cret!', '$argon2', token]) t.notOk(text.includes(secret), `no ${secret.slice(0, 12)}`)
  })

  t.test('a listener that throws does not break login', async (t) => {
    const app = await buildApp(t, {
      server: { logger: { level: 'fatal', stream: logCollector().stream } },
      plugin: { onAuthEvent: () => { throw new Error('listener broke') } }
    })
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, password: 'wrong' }), 400, 'invalid_grant')
  })

  t.test('an async listener that rejects is logged, and neither breaks a login nor the process', async (t) => {
    const { stream, entries } = logCollector()
    const app = await buildApp(t, {
      server: { logger: { level: 'error', stream } },
      plugin: { onAuthEvent: async () => { throw new Error('listener broke later') } }
    })
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
    assertOAuthError(t, await tokenRequest(app, { ...GOOD, password: 'wrong' }), 400, 'invalid_grant')
    // A rejection nobody handles would end the process here (Node's default since v15).
    await new Promise((resolve) => setImmediate(resolve))
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200, 'still serving')
    const logged = entries().filter((entry) => entry.msg === 'onAuthEvent listener failed')
    t.equal(logged.length, 3, 'each rejection logged once')
    t.match(logged[0], { level: 50, err: { message: 'listener broke later' } })
  })

  t.test('the request logger gets the events and never the password or the token', async (t) => {
    const { stream, lines, entries } = logCollector()
    const app = await buildApp(t, { server: { logger: { level: 'info', stream } } })
    const token = await login(app)
    await tokenRequest(app, { ...GOOD, password: 'Wr0ng-S3cret!' })
    const events = entries().filter((entry) => entry.authEvent !== undefined).map((entry) => entry.authEvent)
    t.match(events, [
      { type: 'login.success', username: 'user1', ip: '127.0.0.1' },
      { type: 'login.failure', username: 'user1', ip: '127.0.0.1' }
    ])
    const text = lines.join('\n')
    for (const secret of ['password1', 'Wr0ng-S3cret!', '$argon2', token, token.split('.')[2] as string]) {
      t.notOk(text.includes(secret), `no ${secret.slice(0, 12)} in the log`)
    }
  })
})
