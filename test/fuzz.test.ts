import t, { type Test } from 'tap'
import fc from 'fast-check'
import { createHmac } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp, captureLogs, cheapHash, login, SECRET, type BuildOptions } from './helper.js'

/*
 * Property-based fuzzing of everything a client controls: the /token request (method, content
 * type, form fields, client credentials) for the password, refresh_token and client_credentials grants,
 * the /revoke and /introspect requests, the Authorization header, and the token string with arbitrary signed headers and claims. For every generated input: no 5xx, no error logged, and
 * every refusal in its documented shape.
 *
 * `npm test` runs a bounded number of inputs from a fixed seed, so CI is repeatable;
 * `npm run fuzz` runs many more (FUZZ_RUNS, default 20000 per property) from a random seed
 * unless FUZZ_SEED is given. A failure prints the seed and the shrunk counterexample.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const SEED = process.env.FUZZ_SEED === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED ?? 52_025)
t.comment(`fast-check: ${RUNS} runs per property, seed ${SEED} (replay with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS} npm run fuzz)`)

const PARAMETERS = { seed: SEED, numRuns: RUNS, endOnFailure: true }

// RFC 6749 §5.2 codes, RFC 7009 §2.2.1's for /revoke, and the plugin's for throttling.
const TOKEN_ERRORS: Record<string, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  unsupported_token_type: 400,
  too_many_requests: 429
}
const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'

/** A fuzzing app whose log is watched for errors: an input that makes the plugin log one is a bug. */
async function fuzzApp (t: Test, options: BuildOptions): Promise<{ app: FastifyInstance, assertNoErrorLogged: () => void }> {
  const { stream, entries } = captureLogs()
  const app = await buildApp(t, { ...options, server: { logger: { level: 'warn', stream }, ...options.server } })
  return {
    app,
    assertNoErrorLogged: () => { t.same(entries().filter((entry) => (entry.level as number) >= 50), [], 'nothing logged at error level') }
  }
}

/** Fails the property, with what came back, unless `condition` holds. */
function check (condition: boolean, what: string, res: LightMyRequestResponse): void {
  if (!condition) throw new Error(`${what}: ${res.statusCode} ${JSON.stringify(res.headers)} ${res.body.slice(0, 300)}`)
}

function checkTokenSuccess (res: LightMyRequestResponse): void {
  const body = res.json() as Record<string, unknown>
  check(typeof body.access_token === 'string' && body.token_type === 'Bearer' && typeof body.expires_in === 'number', 'RFC 6749 §5.1 success', res)
}

/** An answer of /token (or, with `success` checking its 200, of /revoke): a success or an RFC 6749 §5.2 error. */
function checkTokenAnswer (res: LightMyRequestResponse, method: string, success = checkTokenSuccess): void {
  check(res.statusCode < 500, 'no 5xx', res)
  check(res.headers['cache-control'] === 'no-store', 'not cacheable', res)
  if (method === 'HEAD') return check(res.statusCode === 405 && res.body === '', 'HEAD is 405 without a body', res)
  if (res.statusCode === 200) return success(res)
  const body = res.json() as Record<string, unknown>
  check(Object.keys(body).sort().join() === 'error,error_description' && typeof body.error_description === 'string', 'exactly { error, error_description }', res)
  const code = body.error as string
  // Another method is 405, or 400 when its body was refused before the route ran.
  const statuses = method === 'POST' ? [TOKEN_ERRORS[code]] : (code === 'invalid_request' ? [405, 400] : [])
  check(statuses.includes(res.statusCode), `${code} comes with its status`, res)
  if (res.statusCode === 429) check(/^[1-9]\d*$/.test(String(res.headers['retry-after'])), 'Retry-After on 429', res)
  if (code === 'invalid_client') check(String(res.headers['www-authenticate']).startsWith('Basic realm='), 'a Basic challenge on invalid_client', res)
}

// Strings that mean something to the endpoint, mixed with anything at all.
const meaningful = fc.constantFrom('password', 'refresh_token', 'client_credentials', 'user1', 'password1', 'admin', 'admin-password',
  'disabled-user', 'profile', 'profile admin', 'admin profile', 'web', 'svc', 'svc-secret', '', ' ', '%', '%00', '+', '\u00e9', 'e\u0301')
const anyText = fc.oneof(
  { weight: 4, arbitrary: meaningful },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 200, maxLength: 1500 }) }
)
const fieldName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('grant_type', 'username', 'password', 'scope', 'client_id', 'client_secret', 'refresh_token') },
  { weight: 1, arbitrary: fc.constantFrom('username[]', 'password[0]', '__proto__', 'constructor[prototype][x]', 'a[b][c]') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 12 }) }
)
/** Mostly right, sometimes anything: `value` with the odd spoiled or missing field. */
const mostly = <T>(value: fc.Arbitrary<T>, other: fc.Arbitrary<unknown> = anyText): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 6, arbitrary: value }, { weight: 1, arbitrary: other }, { weight: 1, arbitrary: fc.constant(undefined) })
/** A password-grant form near a real one, plus a few arbitrary fields, in any order. */
const plausible = fc.tuple(
  fc.record({
    grant_type: mostly(fc.constant('password')),
    username: mostly(fc.constantFrom('user1', 'admin', 'disabled-user', 'nobody', 'us\u0435r1', 'e\u0301')),
    password: mostly(fc.constantFrom('password1', 'admin-password', 'wrong')),
    scope: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: anyText })
  }),
  fc.array(fc.tuple(fieldName, anyText), { maxLength: 2 })
).map(([known, extra]) => [...Object.entries(known).filter(([, v]) => v !== undefined) as Array<[string, string]>, ...extra])
const fields = fc.oneof({ weight: 4, arbitrary: plausible }, { weight: 1, arbitrary: fc.array(fc.tuple(fieldName, anyText), { maxLength: 8 }) })
/** A well-encoded form, or raw bytes with stray `%`, `&` and `=`. */
const body = fc.oneof(
  { weight: 8, arbitrary: fields.map((list) => new URLSearchParams(list).toString()) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom('%', '&', '=', '+', 'a', '0', 'F', 'u', '[', ']', '\u00ff', ' ', '\n'), maxLength: 60 }) },
  { weight: 1, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value) ?? '') }
)
const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/x-www-form-urlencoded') },
  {
    weight: 3,
    arbitrary: fc.constantFrom('application/x-www-form-urlencoded; charset=UTF-8', 'Application/X-WWW-Form-Urlencoded', 'application/json',
      'application/json\t; charset=utf-8', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded, application/json', '')
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 40 }) }
)
const method = fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'PATCH', 'DELETE', 'HEAD') })
const basic = fc.oneof(
  fc.tuple(fc.constantFrom('web', 'svc', 'nobody', ''), fc.constantFrom('svc-secret', 'wrong', '', ':'))
    .map(([id, secret]) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`),
  fc.string({ unit: 'grapheme-ascii', maxLength: 30 }).map((s) => `Basic ${s}`),
  fc.string({ unit: 'grapheme-ascii', maxLength: 30 })
)
const tokenRequest = fc.record({ method, contentType, body, authorization: fc.option(basic, { nil: undefined, freq: 4 }) })

async function sendTokenRequest (app: FastifyInstance, input: { method: string, contentType: string, body: string, authorization: string | undefined }, url = '/token') {
  const headers: Record<string, string> = {}
  if (input.contentType !== '') headers['content-type'] = input.contentType
  if (input.authorization !== undefined) headers.authorization = input.authorization
  const withBody = input.method !== 'GET' && input.method !== 'HEAD'
  return app.inject({ method: input.method as 'POST', url, headers, ...(withBody ? { payload: input.body } : {}) })
}

t.test('/token: any request gets a 200 or an RFC 6749 §5.2 error, never a 5xx', async (t) => {
  const { app, assertNoErrorLogged } = await fuzzApp(t, { plugin: { rateLimit: false, loginThrottle: false } })
  await fc.assert(fc.asyncProperty(tokenRequest, async (input) => {
    checkTokenAnswer(await sendTokenRequest(app, input), input.method)
  }), PARAMETERS)
  assertNoErrorLogged()
})

t.test('/token with client authentication and throttling on: the same holds', async (t) => {
  const { app, assertNoErrorLogged } = await fuzzApp(t, {
    plugin: { rateLimit: { max: 1_000_000 }, clients: [{ id: 'web' }, { id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['password', 'client_credentials'], scopes: ['profile'] }] }
  })
  await fc.assert(fc.asyncProperty(tokenRequest, async (input) => {
    checkTokenAnswer(await sendTokenRequest(app, input), input.method)
  }), PARAMETERS)
  assertNoErrorLogged()
})

const B64TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/='

/** A real token, damaged: a character changed, cut short, grown, or segments moved; or kept. */
function damaged (tokens: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(tokens, fc.nat(), fc.constantFrom(...B64TOKEN_CHARS), fc.constantFrom('flip', 'cut', 'insert', 'swap', 'keep'))
    .map(([token, at, char, how]) => {
      const i = at % token.length
      if (how === 'flip') return token.slice(0, i) + char + token.slice(i + 1)
      if (how === 'cut') return token.slice(0, i)
      if (how === 'insert') return token.slice(0, i) + char + token.slice(i)
      if (how === 'swap') return token.split('.').reverse().join('.')
      return token
    })
}

/** Whether `token` carries our own HMAC over its first two segments. */
function signedByUs (token: string): boolean {
  const [header, payload, signature, ...rest] = token.split('.')
  if (rest.length > 0 || signature === undefined) return false
  const expected = createHmac('sha256', SECRET).update(`${header}.${payload}`).digest()
  return Buffer.from(signature, 'base64url').equals(expected)
}

t.test('Authorization header: 200 only for our signature, else 400/401/403 with a Bearer challenge', async (t) => {
  const { app, assertNoErrorLogged } = await fuzzApp(t, { plugin: { rateLimit: false } })
  const real = await login(app)
  const admin = await login(app, 'admin', 'admin-password')
  const mutated = damaged(fc.constantFrom(real, admin))
  const credentials = fc.oneof({ weight: 4, arbitrary: mutated }, fc.string({ unit: fc.constantFrom(...B64TOKEN_CHARS), maxLength: 200 }), fc.string({ unit: 'grapheme-ascii', maxLength: 80 }))
  // Header values as HTTP allows them: visible ASCII, space, tab and obs-text (RFC 9110 §5.5).
  const headerText = fc.string({ unit: fc.constantFrom(...' \t!"#$%&\'()*,:;<=>?@[\\]^`{|}\u0080\u00a0\u00ff', ...B64TOKEN_CHARS), maxLength: 60 })
  const scheme = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('Bearer', 'bearer', 'BEARER') }, { weight: 1, arbitrary: fc.constantFrom('Bearer:', 'Basic', 'Token', 'JWT', '') })
  const gap = fc.oneof({ weight: 6, arbitrary: fc.constant(' ') }, { weight: 1, arbitrary: fc.constantFrom('  ', '\t', '', ' \t') })
  const authorization = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(scheme, gap, credentials).map(([s, g, value]) => `${s}${g}${value}`) },
    { weight: 1, arbitrary: headerText }
  )
  await fc.assert(fc.asyncProperty(authorization, fc.constantFrom('/protected', '/admin'), async (value, url) => {
    const res = await app.inject({ method: 'GET', url, headers: { authorization: value } })
    check([200, 400, 401, 403].includes(res.statusCode), 'only 200, 400, 401 or 403', res)
    if (res.statusCode === 200) {
      check(signedByUs(value.replace(/^\S+ +/, '')), 'accepted only with our own signature', res)
      return
    }
    const challenge = String(res.headers['www-authenticate'])
    check(challenge.startsWith('Bearer realm="api"'), 'RFC 6750 §3 challenge', res)
    const error = /error="([a-z_]+)"/.exec(challenge)?.[1]
    const expected: Record<number, string | undefined> = { 400: 'invalid_request', 401: error === undefined ? undefined : 'invalid_token', 403: 'insufficient_scope' }
    check(error === expected[res.statusCode], 'the error code matches the status (RFC 6750 §3.1)', res)
    check(!res.body.includes(value.slice(7, 40)) || value.length < 12, 'the token is not echoed', res)
  }), PARAMETERS)
  assertNoErrorLogged()
})

t.test('token string: arbitrary headers and claims signed with our secret are accepted only when valid', async (t) => {
  const { app, assertNoErrorLogged } = await fuzzApp(t, { plugin: { rateLimit: false, issuer: ISSUER, audience: AUDIENCE } })
  const now = Math.floor(Date.now() / 1000)
  const time = fc.oneof(fc.integer({ min: now - 2000, max: now + 2000 }), fc.jsonValue(), fc.constantFrom(now, now - 10, now + 10, 0, -1, 1e20, '1', null))
  const text = fc.oneof(fc.constantFrom('user1', '', 'public', 'profile', 'profile admin', 'j1', ISSUER, AUDIENCE), fc.jsonValue())
  const claimsOf = (value: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined))
  const header = fc.record({
    alg: mostly(fc.constant('HS256'), fc.oneof(fc.constantFrom('none', 'HS512', 'RS256', 'hs256'), fc.jsonValue())),
    typ: mostly(fc.constantFrom('at+jwt', 'application/at+jwt', 'AT+JWT'), fc.oneof(fc.constantFrom('JWT', ''), fc.jsonValue())),
    crit: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.oneof(fc.constant(['x']), fc.jsonValue()) }),
    kid: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: text }),
    jku: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant('http://127.0.0.1:1/jwks.json') })
  }).map(claimsOf)
  const claims = fc.record({
    sub: mostly(fc.constantFrom('user1', 'admin'), text),
    iat: mostly(fc.integer({ min: now - 600, max: now }), time),
    exp: mostly(fc.integer({ min: now + 1, max: now + 900 }), time),
    nbf: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: time }),
    jti: mostly(fc.constant('j1'), text),
    client_id: mostly(fc.constant('public'), text),
    scope: mostly(fc.constantFrom('profile', 'profile admin'), text),
    iss: mostly(fc.constant(ISSUER), fc.oneof(text, fc.constant([ISSUER]))),
    aud: mostly(fc.oneof(fc.constant(AUDIENCE), fc.constant([AUDIENCE, 'x'])), text)
  }).map(claimsOf)
  const payload = fc.oneof({ weight: 6, arbitrary: claims }, { weight: 1, arbitrary: fc.jsonValue() })
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value) ?? '').toString('base64url')

  await fc.assert(fc.asyncProperty(header, payload, async (h, p) => {
    const input = `${encode(h)}.${encode(p)}`
    const token = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`
    const res = await app.inject({ method: 'GET', url: '/protected', headers: { authorization: `Bearer ${token}` } })
    check(res.statusCode === 200 || res.statusCode === 401 || res.statusCode === 400, 'accepted or refused, never anything else', res)
    if (res.statusCode !== 200) {
      check(String(res.headers['www-authenticate']).startsWith('Bearer realm="api", error='), 'RFC 6750 §3 challenge', res)
      return
    }
    // Accepted: then it must be valid by every rule the README states (RFC 8725, RFC 9068 §4).
    const c = p as Record<string, unknown>
    const at = Date.now() / 1000
    const tolerance = 5 + 2 // the default skew, and two seconds for a slow run
    const audiences = Array.isArray(c.aud) ? c.aud : [c.aud]
    const valid = h.alg === 'HS256' && typeof h.typ === 'string' && /^(application\/)?at\+jwt$/i.test(h.typ) && !('crit' in h) &&
      typeof c === 'object' && c !== null && !Array.isArray(c) &&
      typeof c.sub === 'string' && c.sub !== '' && typeof c.jti === 'string' && c.jti !== '' && typeof c.client_id === 'string' &&
      (c.scope === undefined || typeof c.scope === 'string') &&
      typeof c.iat === 'number' && c.iat <= at + tolerance &&
      typeof c.exp === 'number' && c.exp > at - tolerance &&
      (c.nbf === undefined || (typeof c.nbf === 'number' && c.nbf <= at + tolerance)) &&
      c.iss === ISSUER && audiences.includes(AUDIENCE)
    check(valid, `accepted only when valid: header ${JSON.stringify(h)} claims ${JSON.stringify(p)}`, res)
  }), PARAMETERS)
  assertNoErrorLogged()
})

/**
 * An app with refresh tokens and clients, and pools of the tokens it issued: every refresh token
 * (current, spent and revoked alike), the current ones not yet sent (topped up by new logins
 * after each run, so that good requests keep coming), and the access tokens.
 */
async function sessionApp (t: Test) {
  const fuzz = await fuzzApp(t, {
    plugin: {
      rateLimit: false,
      refreshTokens: true,
      clients: [{ id: 'web' }, { id: 'svc', secretHash: await cheapHash('svc-secret'), grants: ['password', 'refresh_token', 'client_credentials'], scopes: ['profile'], introspect: true }]
    }
  })
  const refreshTokens: string[] = []
  const current: string[] = []
  const accessTokens: string[] = []
  let logins = 0
  async function login (): Promise<void> {
    const [username, password] = logins++ % 2 === 0 ? ['user1', 'password1'] : ['admin', 'admin-password']
    const payload = new URLSearchParams({ grant_type: 'password', username, password, client_id: 'web' }).toString()
    const res = await fuzz.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload })
    check(res.statusCode === 200, 'a login for the pool', res)
    refreshTokens.push(res.json().refresh_token)
    current.push(res.json().refresh_token)
    accessTokens.push(res.json().access_token)
  }
  /** After each run: a current token that was sent may be spent, so it leaves the pool; new logins refill it. */
  async function settle (sent: string, issued?: string): Promise<void> {
    for (let i = current.length - 1; i >= 0; i--) if (sent.includes(current[i] as string)) current.splice(i, 1)
    if (issued !== undefined) {
      refreshTokens.push(issued)
      current.push(issued)
    }
    while (current.length < 4) await login()
  }
  await settle('')

  const b64 = (length: number) => fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: length, maxLength: length })
  const pick = (pool: string[]) => fc.nat().map((i) => pool[i % pool.length] as string)
  /** Something in a token field: real refresh tokens (current, spent, damaged), access tokens, look-alikes, anything. */
  const token = fc.oneof(
    { weight: 3, arbitrary: pick(current) },
    { weight: 2, arbitrary: pick(refreshTokens) },
    { weight: 2, arbitrary: damaged(pick(refreshTokens)) },
    { weight: 1, arbitrary: pick(accessTokens) },
    { weight: 1, arbitrary: fc.tuple(b64(22), b64(22), b64(43)).map((parts) => parts.join('.')) },
    { weight: 1, arbitrary: anyText }
  )
  const client = fc.record({
    client_id: mostly(fc.constantFrom('web', 'web', 'svc', 'mobile')),
    client_secret: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('svc-secret', 'wrong') })
  })
  const encode = ([fields, credentials, extra]: [Record<string, unknown>, Record<string, unknown>, Array<[string, string]>]) =>
    new URLSearchParams([...Object.entries({ ...fields, ...credentials }).filter(([, v]) => v !== undefined) as Array<[string, string]>, ...extra]).toString()
  /** A form of `known` fields near a real one, a few arbitrary fields, and sometimes raw bytes; with the usual methods, types and Basic headers. */
  const request = (known: fc.Arbitrary<Record<string, unknown>>) => fc.record({
    method,
    contentType,
    body: fc.oneof(
      { weight: 8, arbitrary: fc.tuple(known, client, fc.array(fc.tuple(fieldName, anyText), { maxLength: 1 })).map(encode) },
      { weight: 1, arbitrary: body }
    ),
    // Mostly credentials in the body, so that good requests are common enough to spend tokens.
    authorization: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: basic })
  })
  return { ...fuzz, refreshTokens, token, request, settle }
}

t.test('/token refresh_token grant: any form gets a new token pair or an RFC 6749 §5.2 error, never a 5xx', async (t) => {
  const { app, assertNoErrorLogged, refreshTokens, token, request, settle } = await sessionApp(t)
  const refreshForm = fc.record({
    grant_type: mostly(fc.constant('refresh_token')),
    refresh_token: mostly(token),
    scope: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.oneof(fc.constantFrom('profile', 'admin', 'profile admin'), anyText) })
  })
  let refreshed = 0
  await fc.assert(fc.asyncProperty(request(refreshForm), async (input) => {
    const res = await sendTokenRequest(app, input)
    let issued: string | undefined
    checkTokenAnswer(res, input.method, (res) => {
      checkTokenSuccess(res)
      const next: unknown = res.json().refresh_token
      check(typeof next === 'string' && /^[\w-]{22}\.[\w-]{22}\.[\w-]{43}$/.test(next) && !refreshTokens.includes(next), 'a new refresh token (RFC 6749 §6)', res)
      issued = next as string
      refreshed++
    })
    await settle(input.body, issued)
  }), PARAMETERS)
  t.comment(`${refreshed} refreshes succeeded`)
  t.ok(refreshed > 0, 'some generated requests were good refreshes')
  assertNoErrorLogged()
})

t.test('/revoke: any request gets a 200 with {} or an RFC 6749 §5.2 error, never a 5xx', async (t) => {
  // Access tokens are not revocable here, so unsupported_token_type (RFC 7009 §2.2.1) comes up too.
  const { app, assertNoErrorLogged, token, request, settle } = await sessionApp(t)
  const revokeForm = fc.record({
    token: mostly(token),
    token_type_hint: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.constantFrom('refresh_token', 'access_token') }, { weight: 1, arbitrary: anyText })
  })
  const seen = new Set<string>()
  await fc.assert(fc.asyncProperty(request(revokeForm), async (input) => {
    const res = await sendTokenRequest(app, input, '/revoke')
    checkTokenAnswer(res, input.method, (res) => { check(res.body === '{}' && /^application\/json/.test(String(res.headers['content-type'])), 'RFC 7009 §2.2: 200 with {} as JSON', res) })
    seen.add(res.statusCode === 200 || res.body === '' ? String(res.statusCode) : `${res.statusCode} ${res.json().error as string}`)
    await settle(input.body)
  }), PARAMETERS)
  t.comment(`answers seen: ${[...seen].sort().join(', ')}`)
  t.ok(seen.has('200'), 'some generated requests revoked')
  assertNoErrorLogged()
})

t.test('/introspect: any request gets {"active":false}, an active token\'s members, or an RFC 6749 §5.2 error, never a 5xx', async (t) => {
  const { app, assertNoErrorLogged, token, request, settle } = await sessionApp(t)
  const introspectForm = fc.record({
    token: mostly(token),
    token_type_hint: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.constantFrom('refresh_token', 'access_token') }, { weight: 1, arbitrary: anyText })
  })
  const seen = new Set<string>()
  await fc.assert(fc.asyncProperty(request(introspectForm), async (input) => {
    const res = await sendTokenRequest(app, input, '/introspect')
    checkTokenAnswer(res, input.method, (res) => {
      const body = res.json() as Record<string, unknown>
      // RFC 7662 §2.2: an inactive token gets nothing but `active: false`.
      check(res.body === '{"active":false}' || (body.active === true && typeof body.sub === 'string' && typeof body.client_id === 'string' &&
        typeof body.exp === 'number' && typeof body.jti === 'string'), 'RFC 7662 §2.2 answer', res)
      seen.add(body.active === true ? 'active' : 'inactive')
    })
    if (res.statusCode !== 200 && res.body !== '') seen.add(`${res.statusCode} ${res.json().error as string}`)
    await settle(input.body)
  }), PARAMETERS)
  t.comment(`answers seen: ${[...seen].sort().join(', ')}`)
  t.ok(seen.has('active') && seen.has('inactive'), 'both kinds of answer came up')
  assertNoErrorLogged()
})
