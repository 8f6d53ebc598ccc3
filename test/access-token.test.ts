import t, { type Test } from 'tap'
import { createHmac } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { bearer, buildApp, forge, login, SECRET, tokenRequest, validClaims, VALID_HEADER, type BuildOptions } from './helper.js'

// Access tokens: what /token signs (RFC 9068 §2) and what `authenticate` accepts (RFC 9068 §4,
// RFC 8725). Every verification failure must be 401 invalid_token, never a 500.

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'
const OTHER_SECRET = 'another-secret-5d2b8e1f7a4c9036be21d8f4a7c3e950'

const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** Signs an already-encoded `header.payload` input with HMAC, for segments `forge` cannot make. */
function signInput (input: string, secret: string = SECRET, alg = 'sha256'): string {
  return `${input}.${createHmac(alg, secret).update(input).digest('base64url')}`
}

/** Decodes a compact JWS by hand. */
function decode (token: string): { header: Record<string, unknown>, payload: Record<string, unknown> } {
  const [header = '', payload = ''] = token.split('.')
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  }
}

const now = (): number => Math.floor(Date.now() / 1000)

function get (app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/protected', headers: bearer(token) })
}

/** Asserts the token is accepted. */
async function assertAccepted (t: Test, app: FastifyInstance, token: string, sub = 'user1'): Promise<void> {
  const res = await get(app, token)
  t.equal(res.statusCode, 200, 'accepted')
  t.equal(res.json().sub, sub)
}

/** Asserts the token is refused with 401 invalid_token (RFC 6750 §3.1) and not with a 500. */
async function assertRejected (t: Test, app: FastifyInstance, token: string): Promise<void> {
  const res = await get(app, token)
  t.equal(res.statusCode, 401, 'rejected with 401')
  t.match(res.headers['www-authenticate'], /^Bearer realm="api", error="invalid_token"/)
  t.equal(res.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN')
}

const CONFIGURED: BuildOptions = { plugin: { issuer: ISSUER, audience: AUDIENCE } }
const configuredClaims = (overrides: Record<string, unknown> = {}): Record<string, unknown> =>
  validClaims({ iss: ISSUER, aud: AUDIENCE, ...overrides })

t.test('a token from /token: typ at+jwt, HS256, the RFC 9068 claims', async (t) => {
  const app = await buildApp(t)
  const before = now()
  const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(res.statusCode, 200)
  const { access_token: token, expires_in: expiresIn } = res.json()
  const { header, payload } = decode(token)
  t.same(header, { alg: 'HS256', typ: 'at+jwt' })
  t.same(Object.keys(payload).sort(), ['client_id', 'exp', 'iat', 'jti', 'rev_epoch', 'scope', 'sub'], 'no iss/aud when not configured')
  t.equal(payload.rev_epoch, 0, 'the revocation epoch its grant began in: none yet')
  t.match(payload, { sub: 'user1', client_id: 'public', scope: 'profile', jti: String })
  t.ok((payload.iat as number) >= before && (payload.iat as number) <= now(), 'iat is now')
  t.equal(expiresIn, 900, 'default TTL 15 minutes')
  t.equal((payload.exp as number) - (payload.iat as number), 900)

  const other = decode(await login(app))
  t.not(other.payload.jti, payload.jti, 'jti is unique per token')
  await assertAccepted(t, app, token)
})

t.test('iss and aud are signed when configured', async (t) => {
  const app = await buildApp(t, CONFIGURED)
  const token = await login(app)
  t.match(decode(token).payload, { iss: ISSUER, aud: AUDIENCE, sub: 'user1' })
  await assertAccepted(t, app, token)
})

t.test('expires_in and exp follow the accessTokenTtl option', async (t) => {
  const app = await buildApp(t, { plugin: { accessTokenTtl: 60 } })
  const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(res.json().expires_in, 60)
  const { payload } = decode(res.json().access_token)
  t.equal((payload.exp as number) - (payload.iat as number), 60)
})

t.test('the control: a hand-forged valid token is accepted', async (t) => {
  const app = await buildApp(t)
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims()))
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ sub: 'someone' })), 'someone')
})

t.test('alg none in every casing, with or without a signature (RFC 8725 §3.2)', async (t) => {
  const app = await buildApp(t)
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    const unsigned = `${b64url({ alg, typ: 'at+jwt' })}.${b64url(validClaims())}`
    await assertRejected(t, app, `${unsigned}.`)
    await assertRejected(t, app, signInput(unsigned))
  }
})

t.test('another algorithm with the same secret (RFC 8725 §3.1)', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge({ alg: 'HS384', typ: 'at+jwt' }, validClaims(), SECRET, 'sha384'))
  await assertRejected(t, app, forge({ alg: 'HS512', typ: 'at+jwt' }, validClaims(), SECRET, 'sha512'))
  // Algorithm confusion: an HMAC over the secret presented as an RSA signature.
  await assertRejected(t, app, forge({ alg: 'RS256', typ: 'at+jwt' }, validClaims(), SECRET, 'sha256'))
  await assertRejected(t, app, forge({ typ: 'at+jwt' }, validClaims()))
})

t.test('a wrong, stripped or foreign signature', async (t) => {
  const app = await buildApp(t)
  const token = forge(VALID_HEADER, validClaims())
  const [header, payload, signature = ''] = token.split('.')
  const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1)
  await assertRejected(t, app, `${header}.${payload}.${flipped}`)
  await assertRejected(t, app, `${header}.${payload}.`)
  await assertRejected(t, app, `${header}.${payload}`)
  await assertRejected(t, app, forge(VALID_HEADER, validClaims(), OTHER_SECRET))
  // The signature of another payload.
  await assertRejected(t, app, `${header}.${b64url(validClaims({ sub: 'admin' }))}.${signature}`)
})

t.test('nbf in the future (fast-jwt "inactive"), and nbf within the tolerance', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ nbf: now() + 60 })))
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ nbf: now() + 2 })))
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ nbf: now() - 60 })))
})

t.test('exp in the past is rejected; within the default 5 s tolerance it is accepted', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ iat: now() - 100, exp: now() - 30 })))
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ iat: now() - 100, exp: now() - 2 })))
})

t.test('clockTolerance: 0 rejects what the default tolerance accepts', async (t) => {
  const app = await buildApp(t, { plugin: { clockTolerance: 0 } })
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ iat: now() - 100, exp: now() - 2 })))
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ nbf: now() + 2 })))
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ iat: now() + 2 })))
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims()))
})

t.test('a larger clockTolerance accepts a token expired within it', async (t) => {
  const app = await buildApp(t, { plugin: { clockTolerance: 120 } })
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ iat: now() - 300, exp: now() - 60 })))
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ iat: now() - 300, exp: now() - 180 })))
})

t.test('iat in the future beyond the tolerance is rejected', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ iat: now() + 60, exp: now() + 600 })))
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ iat: now() + 2 })))
})

t.test('a claim of the wrong type (fast-jwt "invalidClaimType" and our own checks)', async (t) => {
  const app = await buildApp(t)
  const spoiled: Array<Record<string, unknown>> = [
    { exp: String(now() + 300) },
    { nbf: String(now() - 10) },
    { iat: String(now()) },
    { iat: null },
    { client_id: 7 },
    { scope: ['profile'] },
    { sub: ['user1'] }
  ]
  for (const overrides of spoiled) {
    t.test(JSON.stringify(overrides), async (t) => {
      await assertRejected(t, app, forge(VALID_HEADER, validClaims(overrides)))
    })
  }
})

t.test('an unknown crit header (RFC 7515 §4.1.11, fast-jwt "invalidCritHeader")', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge({ ...VALID_HEADER, crit: ['https://example.com/ext'], 'https://example.com/ext': true }, validClaims()))
  await assertRejected(t, app, forge({ ...VALID_HEADER, crit: ['exp'] }, validClaims()))
})

t.test('typ missing, JWT or another type (RFC 8725 §3.11, fast-jwt "invalidType")', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge({ alg: 'HS256' }, validClaims()))
  for (const typ of ['JWT', 'jwt', 'application/jwt', 'at+jwt2', 'secevent+jwt', '', 7]) {
    t.test(`typ ${JSON.stringify(typ)}`, async (t) => {
      await assertRejected(t, app, forge({ alg: 'HS256', typ }, validClaims()))
    })
  }
})

t.test('typ application/at+jwt and any casing are accepted (RFC 7515 §4.1.9)', async (t) => {
  const app = await buildApp(t)
  for (const typ of ['application/at+jwt', 'AT+JWT', 'Application/At+Jwt']) {
    await assertAccepted(t, app, forge({ alg: 'HS256', typ }, validClaims()))
  }
})

t.test('a payload that is not a JSON object', async (t) => {
  const app = await buildApp(t)
  const header = b64url(VALID_HEADER)
  const cases: Record<string, string> = {
    'a JSON array': signInput(`${header}.${b64url([validClaims()])}`),
    'JSON null': signInput(`${header}.${b64url('null')}`),
    'a JSON string': signInput(`${header}.${b64url('"user1"')}`),
    'a JSON number': signInput(`${header}.${b64url('42')}`),
    'not JSON': signInput(`${header}.${b64url('not json')}`),
    'not base64url (standard base64 characters)': signInput(`${header}.${b64url(validClaims()).slice(0, 8)}+/${b64url(validClaims()).slice(8)}`),
    'not base64url (a tilde)': signInput(`${header}.~${b64url(validClaims())}`),
    'an empty payload': signInput(`${header}.`),
    'a header that is not JSON': signInput(`${b64url('not json')}.${b64url(validClaims())}`),
    'a header that is an array': signInput(`${b64url([VALID_HEADER])}.${b64url(validClaims())}`)
  }
  for (const [name, token] of Object.entries(cases)) {
    t.test(name, async (t) => { await assertRejected(t, app, token) })
  }
})

t.test('sub missing, empty or not a string', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ sub: undefined })))
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ sub: '' })))
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ sub: 42 })))
})

t.test('regression: jti must be a non-empty string (RFC 7519 §4.1.7)', async (t) => {
  const app = await buildApp(t)
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ jti: 123 })))
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ jti: '' })))
})

t.test('a required claim missing: jti, client_id, iat, exp', async (t) => {
  const app = await buildApp(t)
  for (const claim of ['jti', 'client_id', 'iat', 'exp']) {
    t.test(claim, async (t) => {
      await assertRejected(t, app, forge(VALID_HEADER, validClaims({ [claim]: undefined })))
    })
  }
})

t.test('iss and aud when configured: matched exactly and required (RFC 8725 §3.8–3.9)', async (t) => {
  const app = await buildApp(t, CONFIGURED)
  await assertAccepted(t, app, forge(VALID_HEADER, configuredClaims()))
  await assertAccepted(t, app, forge(VALID_HEADER, configuredClaims({ aud: ['https://other.example', AUDIENCE] })), 'user1')
  const spoiled: Array<Record<string, unknown>> = [
    { iss: 'https://evil.example' },
    { iss: `${ISSUER}/` },
    { iss: ISSUER.toUpperCase() },
    { aud: 'https://other.example' },
    { aud: ['https://other.example'] },
    { aud: `${AUDIENCE}.evil` },
    { iss: undefined },
    { aud: undefined },
    { aud: [] }
  ]
  for (const overrides of spoiled) {
    t.test(JSON.stringify(overrides), async (t) => {
      await assertRejected(t, app, forge(VALID_HEADER, configuredClaims(overrides)))
    })
  }
})

t.test('iss and aud are not checked when not configured', async (t) => {
  const app = await buildApp(t)
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ iss: 'https://anyone.example', aud: 'anything' })))
})

t.test('an audience list: a token for any one of them is accepted', async (t) => {
  const app = await buildApp(t, { plugin: { audience: [AUDIENCE, 'https://api2.example'] } })
  await assertAccepted(t, app, forge(VALID_HEADER, validClaims({ aud: 'https://api2.example' })))
  await assertAccepted(t, app, await login(app))
  await assertRejected(t, app, forge(VALID_HEADER, validClaims({ aud: 'https://other.example' })))
})

t.test('a token over 8192 characters is refused, one at the limit is not', async (t) => {
  const app = await buildApp(t)
  // A valid token grown by a padding claim to at least `length` characters.
  const sized = (length: number): string => {
    for (let pad = Math.max(0, Math.floor(length * 0.72) - 200); ; pad++) {
      const token = forge(VALID_HEADER, validClaims({ pad: 'x'.repeat(pad) }))
      if (token.length >= length) return token
    }
  }
  const atLimit = sized(8192)
  t.equal(atLimit.length, 8192)
  await assertAccepted(t, app, atLimit)
  const over = sized(8193)
  t.equal(over.length, 8193)
  await assertRejected(t, app, over)
  await assertRejected(t, app, sized(20000))
})

t.test('a token with two segments, or four', async (t) => {
  const app = await buildApp(t)
  const token = forge(VALID_HEADER, validClaims())
  const [header, payload, signature] = token.split('.')
  await assertRejected(t, app, `${header}.${payload}`)
  await assertRejected(t, app, `${payload}.${signature}`)
  await assertRejected(t, app, `${token}.${signature}`)
})

t.test('a token of another app with the same claims but another secret', async (t) => {
  const other = await buildApp(t, { plugin: { secret: OTHER_SECRET } })
  const app = await buildApp(t)
  const foreign = await login(other)
  await assertAccepted(t, other, foreign)
  await assertRejected(t, app, foreign)
})

t.test('regression: a host that registered @fastify/jwt first can register us (no FST_ERR_DEC_ALREADY_PRESENT) and keeps its own app.jwt', async (t) => {
  const app = await buildApp(t, {
    before: async (app) => {
      await app.register(fastifyJwt, { secret: OTHER_SECRET })
      app.get('/host', async (request) => {
        await request.jwtVerify()
        return { host: request.user }
      })
    }
  })
  const hostToken = app.jwt.sign({ hello: 'host' })
  t.match(app.jwt.verify(hostToken), { hello: 'host' }, "the host's jwt signs and verifies with its secret")
  const hostRes = await app.inject({ method: 'GET', url: '/host', headers: bearer(hostToken) })
  t.equal(hostRes.statusCode, 200)
  t.match(hostRes.json(), { host: { hello: 'host' } }, "the host's request.jwtVerify still works")

  const ours = await login(app)
  t.throws(() => app.jwt.verify(ours), "the host's secret does not verify our token")
  t.equal(decode(ours).header.typ, 'at+jwt')
  t.equal(ours, signInput(ours.split('.').slice(0, 2).join('.')), 'our token is signed with our secret')
  await assertAccepted(t, app, ours)
  // And a token the host signed is not an access token of ours.
  await assertRejected(t, app, hostToken)
  await assertRejected(t, app, app.jwt.sign(validClaims()))
})
