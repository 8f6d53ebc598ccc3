import t, { type Test } from 'tap'
import { createPublicKey, createSecretKey, generateKeyPairSync, randomBytes, type JsonWebKey } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { createLocalJWKSet, jwtVerify } from 'jose'
import type { KeyOption } from '../lib/index.js'
import { bearer, buildApp, login, validClaims, type BuildOptions } from './helper.js'
import { ALL, countingServer, hmacSecret, keyPair, signingKey, signJws } from './key-fixtures.js'

/*
 * The `keys` option (RFC 7515 §4.1.4 `kid`, RFC 7518 algorithms, RFC 8725 §3.1 and §3.10): the first
 * key signs, every key verifies the tokens that name it, one algorithm per key, and the public
 * keys served as a JWKS (RFC 7517 §5).
 */

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'
const INVALID = 'FST_TOKEN_AUTH_INVALID_OPTION'
const WEAK = 'FST_TOKEN_AUTH_WEAK_SECRET'

function withKeys (keys: unknown, extra: BuildOptions['plugin'] = {}): BuildOptions {
  return { plugin: { secret: undefined, keys: keys as KeyOption[], issuer: ISSUER, audience: AUDIENCE, ...extra } }
}

function decodeHeader (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString('utf8'))
}

const claims = (overrides: Record<string, unknown> = {}): Record<string, unknown> => validClaims({ iss: ISSUER, aud: AUDIENCE, ...overrides })

async function assertAccepted (t: Test, app: FastifyInstance, token: string, message?: string): Promise<void> {
  const res = await app.inject({ url: '/protected', headers: bearer(token) })
  t.equal(res.statusCode, 200, message ?? 'accepted')
}

async function assertRejected (t: Test, app: FastifyInstance, token: string, message?: string): Promise<void> {
  const res = await app.inject({ url: '/protected', headers: bearer(token) })
  t.equal(res.statusCode, 401, message ?? 'rejected')
  t.match(res.headers['www-authenticate'], /error="invalid_token"/)
  t.equal(res.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN')
}

t.test('every algorithm round-trips: the token names its kid and alg, and is accepted', async (t) => {
  for (const alg of ALL) {
    const app = await buildApp(t, withKeys([signingKey(alg, `k-${alg}`)]))
    const token = await login(app)
    t.same(decodeHeader(token), { alg, typ: 'at+jwt', kid: `k-${alg}` }, `${alg} header`)
    await assertAccepted(t, app, token, `${alg} accepted`)
  }
})

t.test('keys given as PEM, KeyObject or JWK, private or secret', async (t) => {
  const es = keyPair('ES256', 'forms')
  const jwk = es.privateKey.export({ format: 'jwk' })
  const secret = hmacSecret('HS384')
  const forms: Array<[string, KeyOption]> = [
    ['PEM Buffer', { kid: 'k', alg: 'ES256', key: es.privateKey.export({ type: 'pkcs8', format: 'pem' }) as Buffer }],
    ['SEC1 PEM', { kid: 'k', alg: 'ES256', key: es.privateKey.export({ type: 'sec1', format: 'pem' }) as string }],
    ['KeyObject', { kid: 'k', alg: 'ES256', key: es.privateKey }],
    ['JWK with kid and alg inside', { key: { ...jwk, kid: 'k', alg: 'ES256', use: 'sig' } }],
    ['JWK with kid and alg outside', { kid: 'k', alg: 'ES256', key: jwk }],
    ['secret Buffer', { kid: 'k', alg: 'HS384', key: secret }],
    ['secret string', { kid: 'k', alg: 'HS384', key: secret.toString('base64url') }],
    ['secret KeyObject', { kid: 'k', alg: 'HS384', key: createSecretKey(secret) }],
    ['oct JWK', { kid: 'k', alg: 'HS384', key: { kty: 'oct', k: secret.toString('base64url') } }]
  ]
  for (const [form, key] of forms) {
    const app = await buildApp(t, withKeys([key]))
    const token = await login(app)
    t.equal(decodeHeader(token).kid, 'k', form)
    await assertAccepted(t, app, token, `${form} signs and verifies`)
  }
})

t.test('the first key signs; every listed key verifies the tokens that name it', async (t) => {
  const first = signingKey('ES256', 'first')
  const second = signingKey('EdDSA', 'second')
  const third = signingKey('HS256', 'third')
  const app = await buildApp(t, withKeys([first, second, third]))
  const token = await login(app)
  t.equal(decodeHeader(token).kid, 'first', 'the first key signs')

  // Tokens made with the other keys, as other instances or earlier deploys would have.
  const ed = keyPair('EdDSA', 'second').privateKey
  await assertAccepted(t, app, signJws({ alg: 'EdDSA', typ: 'at+jwt', kid: 'second' }, claims(), 'EdDSA', ed), 'second key verifies')
  await assertAccepted(t, app, signJws({ alg: 'HS256', typ: 'at+jwt', kid: 'third' }, claims(), 'HS256', third.key as Buffer), 'third key verifies')
})

t.test('rotation: the old key signs, a new key is prepended, old tokens stay valid until the old key is removed', async (t) => {
  const oldKey = signingKey('RS256', 'old')
  const newKey = signingKey('ES256', 'new')

  const before = await buildApp(t, withKeys([oldKey]))
  const oldToken = await login(before)
  t.equal(decodeHeader(oldToken).kid, 'old')

  const during = await buildApp(t, withKeys([newKey, oldKey]))
  const newToken = await login(during)
  t.equal(decodeHeader(newToken).kid, 'new', 'the prepended key signs new tokens')
  await assertAccepted(t, during, oldToken, 'a token of the old key is still accepted')
  await assertAccepted(t, during, newToken)

  const after = await buildApp(t, withKeys([newKey]))
  await assertRejected(t, after, oldToken, 'once the old key is removed, its tokens fail')
  await assertAccepted(t, after, newToken)
})

t.test('an unknown, missing or non-string kid is invalid_token', async (t) => {
  const key = signingKey('ES256', 'known')
  const app = await buildApp(t, withKeys([key]))
  const es = keyPair('ES256', 'known').privateKey
  const events: string[] = []
  const watched = await buildApp(t, withKeys([key], { onAuthEvent: (e) => { events.push(e.reason ?? '') } }))
  await assertAccepted(t, app, signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'known' }, claims(), 'ES256', es), 'control')
  for (const kid of ['unknown', '', 'KNOWN', ' known', undefined, 1, null, ['known'], { kid: 'known' }]) {
    const header = { alg: 'ES256', typ: 'at+jwt', ...(kid === undefined ? {} : { kid }) }
    await assertRejected(t, app, signJws(header, claims(), 'ES256', es), `kid ${JSON.stringify(kid)}`)
  }
  await assertRejected(t, watched, signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'gone' }, claims(), 'ES256', es))
  t.same(events, ['unknown_key'], 'the event says the key is unknown')
  // A header that is not JSON, or not an object.
  const body = Buffer.from(JSON.stringify(claims())).toString('base64url')
  await assertRejected(t, app, `bm90IGpzb24.${body}.c2ln`)
  await assertRejected(t, app, `${Buffer.from('"known"').toString('base64url')}.${body}.c2ln`)
  await assertRejected(t, app, `${Buffer.from('null').toString('base64url')}.${body}.c2ln`)
})

t.test('no algorithm confusion (RFC 8725 §2.1, §3.1): each key verifies with its own algorithm only', async (t) => {
  const rsa = keyPair('RS256', 'victim')
  const ec = keyPair('ES256', 'victim')
  const ed = keyPair('EdDSA', 'victim')
  const hs = signingKey('HS256', 'hs')
  const app = await buildApp(t, withKeys([
    { kid: 'rsa', alg: 'RS256', key: rsa.privateKey },
    { kid: 'ec', alg: 'ES256', key: ec.privateKey },
    { kid: 'ed', alg: 'EdDSA', key: ed.privateKey },
    hs
  ]))
  await assertAccepted(t, app, signJws({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa' }, claims(), 'RS256', rsa.privateKey), 'control: RS256')

  // HS256 tokens whose "secret" is the public key, in every form an attacker can get it.
  for (const [name, pair, kid] of [['RSA', rsa, 'rsa'], ['EC', ec, 'ec'], ['Ed25519', ed, 'ed']] as const) {
    const forms: Array<[string, Buffer]> = [
      ['SPKI PEM', Buffer.from(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string)],
      ['DER', pair.publicKey.export({ type: 'spki', format: 'der' })],
      ['JWK JSON', Buffer.from(JSON.stringify(pair.publicKey.export({ format: 'jwk' })))]
    ]
    if (name === 'RSA') forms.push(['PKCS#1 PEM', Buffer.from(pair.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string)])
    for (const [form, secret] of forms) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        await assertRejected(t, app, signJws({ alg, typ: 'at+jwt', kid }, claims(), alg, secret), `${alg} with the ${name} public key (${form}) as secret`)
      }
    }
  }

  // An RS256 key's token with alg switched: to PS256 (same RSA key), to HS256, to none.
  const rs = signJws({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa' }, claims(), 'RS256', rsa.privateKey)
  const [, payload, signature] = rs.split('.')
  for (const alg of ['PS256', 'RS384', 'RS512', 'ES256', 'HS256', 'none', 'EdDSA']) {
    const switched = Buffer.from(JSON.stringify({ alg, typ: 'at+jwt', kid: 'rsa' })).toString('base64url')
    await assertRejected(t, app, `${switched}.${payload}.${signature}`, `RS256 signature under alg ${alg}`)
  }
  await assertRejected(t, app, signJws({ alg: 'PS256', typ: 'at+jwt', kid: 'rsa' }, claims(), 'PS256', rsa.privateKey), 'a real PS256 signature by the RS256 key')
  await assertRejected(t, app, `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: 'rsa' })).toString('base64url')}.${payload}.`)

  // A signature by one key presented under another key's kid.
  await assertRejected(t, app, signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'ed' }, claims(), 'ES256', ec.privateKey), 'ES256 under the Ed25519 kid')
  await assertRejected(t, app, signJws({ alg: 'EdDSA', typ: 'at+jwt', kid: 'ec' }, claims(), 'EdDSA', ed.privateKey), 'EdDSA under the EC kid')
  await assertRejected(t, app, signJws({ alg: 'RS256', typ: 'at+jwt', kid: 'hs' }, claims(), 'RS256', rsa.privateKey), 'RS256 under the HS kid')
  await assertRejected(t, app, signJws({ alg: 'HS256', typ: 'at+jwt', kid: 'rsa' }, claims(), 'HS256', hs.key as Buffer), 'the HS secret under the RSA kid')
})

t.test('jwk, jku and x5u headers are never followed (RFC 8725 §3.10)', async (t) => {
  const trap = await countingServer(t, (_request, response) => { response.end('{"keys":[]}') })
  const real = keyPair('ES256', 'real')
  const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const app = await buildApp(t, withKeys([{ kid: 'real', alg: 'ES256', key: real.privateKey }]))
  const lures = {
    jku: `${trap.url}/jwks.json`,
    x5u: `${trap.url}/cert.pem`,
    jwk: { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'real' }
  }
  // The attacker's own key, offered in the header, with and without the real kid.
  for (const kid of ['real', 'attacker', undefined]) {
    const header = { alg: 'ES256', typ: 'at+jwt', ...lures, ...(kid === undefined ? {} : { kid }) }
    await assertRejected(t, app, signJws(header, claims(), 'ES256', attacker.privateKey), `attacker key, kid ${String(kid)}`)
  }
  // A real token carrying the same headers is accepted: they are simply not looked at.
  await assertAccepted(t, app, signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'real', ...lures }, claims(), 'ES256', real.privateKey))
  t.equal(trap.hits(), 0, 'no URL from a token header was fetched')
})

t.test('the JWKS: public keys only, with kid, alg and use, and a Cache-Control', async (t) => {
  const keys = [signingKey('ES256', 'es'), signingKey('RS256', 'rs'), signingKey('HS512', 'hs'), signingKey('EdDSA', 'ed'), signingKey('PS256', 'ps')]
  const app = await buildApp(t, withKeys(keys))
  const res = await app.inject('/.well-known/jwks.json')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'public, max-age=300')
  t.match(res.headers['content-type'], /^application\/jwk-set\+json/)
  const { keys: published } = res.json() as { keys: JsonWebKey[] }
  t.same(published.map((k) => [k.kid, k.alg, k.use]), [['es', 'ES256', 'sig'], ['rs', 'RS256', 'sig'], ['ed', 'EdDSA', 'sig'], ['ps', 'PS256', 'sig']],
    'every asymmetric key, in order; never the HS secret')
  for (const jwk of published) {
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']) t.notOk(member in jwk, `${String(jwk.kid)} has no "${member}"`)
    t.equal(createPublicKey({ key: jwk, format: 'jwk' }).type, 'public')
  }
  const secret = (keys[2] as KeyOption).key as Buffer
  t.notMatch(res.body, secret.toString('base64url'), 'the HMAC secret is nowhere in it')

  // jose, an independent implementation, verifies our tokens against our JWKS.
  const jwks = createLocalJWKSet(res.json())
  const token = await login(app)
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt', algorithms: ['ES256'] })
  t.equal(protectedHeader.kid, 'es')
  t.equal(payload.sub, 'user1')
  const head = await app.inject({ method: 'HEAD', url: '/.well-known/jwks.json' })
  t.equal(head.statusCode, 200)
})

t.test('jose verifies tokens of every asymmetric algorithm against our JWKS', async (t) => {
  for (const alg of ['RS256', 'PS256', 'ES256', 'EdDSA'] as const) {
    const app = await buildApp(t, withKeys([signingKey(alg, `jose-${alg}`)]))
    const jwks = createLocalJWKSet((await app.inject('/.well-known/jwks.json')).json())
    const token = await login(app, 'admin', 'admin-password')
    const { payload } = await jwtVerify(token, jwks, { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt', algorithms: [alg], requiredClaims: ['jti', 'client_id'] })
    t.match(payload, { sub: '42', scope: 'profile admin', client_id: 'public' }, alg)
    // And jose refuses it once a byte of the signature changes, so the check above is real.
    const broken = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA')
    await t.rejects(jwtVerify(broken, jwks, { algorithms: [alg] }), `${alg}: a broken signature fails in jose too`)
  }
})

t.test('no JWKS with HMAC keys only, with jwksPath: false, or in verify-only mode; jwksPath and prefix apply', async (t) => {
  const hsOnly = await buildApp(t, withKeys([signingKey('HS256'), signingKey('HS512')]))
  t.equal((await hsOnly.inject('/.well-known/jwks.json')).statusCode, 404, 'HS keys only')
  const secretOnly = await buildApp(t)
  t.equal((await secretOnly.inject('/.well-known/jwks.json')).statusCode, 404, 'the secret shortcut')
  const off = await buildApp(t, withKeys([signingKey('ES256')], { jwksPath: false }))
  t.equal((await off.inject('/.well-known/jwks.json')).statusCode, 404, 'jwksPath: false')
  const verifyOnly = await buildApp(t, withKeys([signingKey('ES256')], { findUser: undefined }))
  t.equal((await verifyOnly.inject('/.well-known/jwks.json')).statusCode, 404, 'verify-only mode publishes nothing')

  const custom = await buildApp(t, withKeys([signingKey('ES256', 'c')], { jwksPath: '/keys' }))
  t.equal((await custom.inject('/keys')).json().keys[0].kid, 'c')
  t.equal((await custom.inject('/.well-known/jwks.json')).statusCode, 404)

  const prefixed = await buildApp(t, { ...withKeys([signingKey('ES256', 'p')]), register: { prefix: '/auth' } })
  t.equal((await prefixed.inject('/auth/.well-known/jwks.json')).json().keys[0].kid, 'p', 'the prefix applies, as for /token')
  t.equal((await prefixed.inject('/.well-known/jwks.json')).statusCode, 404)
})

t.test('a public-key list verifies without findUser; a public key cannot sign', async (t) => {
  const pair = keyPair('EdDSA', 'pub')
  const issuer = await buildApp(t, withKeys([{ kid: 'pub', alg: 'EdDSA', key: pair.privateKey }]))
  const token = await login(issuer)
  const spki = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string
  for (const key of [spki, pair.publicKey, pair.publicKey.export({ format: 'jwk' })]) {
    const resource = await buildApp(t, withKeys([{ kid: 'pub', alg: 'EdDSA', key }], { findUser: undefined }))
    await assertAccepted(t, resource, token, 'a public key verifies')
    t.equal((await resource.inject({ method: 'POST', url: '/token' })).statusCode, 404, 'no token endpoint')
    const admin = await resource.inject({ url: '/admin', headers: bearer(token) })
    t.equal(admin.statusCode, 403, 'requireScopes works in verify-only mode')
  }
  await t.rejects(buildApp(t, withKeys([{ kid: 'pub', alg: 'EdDSA', key: spki }])), { code: INVALID, message: /option "keys"/ },
    'with findUser, the first key must sign')
  // A public key after a private one is fine: it verifies, and is published.
  const mixed = await buildApp(t, withKeys([signingKey('ES256', 'signer'), { kid: 'pub', alg: 'EdDSA', key: spki }]))
  await assertAccepted(t, mixed, token)
  t.same((await mixed.inject('/.well-known/jwks.json')).json().keys.map((k: JsonWebKey) => k.kid), ['signer', 'pub'])
})

t.test('a host that registered @fastify/jwt keeps it, with several keys of ours', async (t) => {
  const { default: fastifyJwt } = await import('@fastify/jwt')
  const app = await buildApp(t, {
    ...withKeys([signingKey('ES256', 'one'), signingKey('HS256', 'two')]),
    before: (app) => app.register(fastifyJwt, { secret: randomBytes(32) })
  })
  const hostToken = app.jwt.sign({ hello: 'host' })
  t.match(app.jwt.verify(hostToken), { hello: 'host' })
  await assertAccepted(t, app, await login(app))
  await assertRejected(t, app, hostToken)
})

const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey
const invalidKeys: Array<[string, unknown, string, string]> = [
  ['not an array', { kid: 'k', alg: 'HS256', key: hmacSecret('HS256') }, INVALID, 'keys'],
  ['empty', [], INVALID, 'keys'],
  ['an entry that is not an object', ['secret'], INVALID, 'keys[0]'],
  ['no key', [{ kid: 'k', alg: 'HS256' }], INVALID, 'keys[0]'],
  ['no kid', [{ alg: 'HS256', key: hmacSecret('HS256') }], INVALID, 'keys[0]'],
  ['an empty kid', [{ kid: '', alg: 'HS256', key: hmacSecret('HS256') }], INVALID, 'keys[0]'],
  ['a kid that is not a string', [{ kid: 7, alg: 'HS256', key: hmacSecret('HS256') }], INVALID, 'keys[0]'],
  ['a very long kid', [{ kid: 'k'.repeat(257), alg: 'HS256', key: hmacSecret('HS256') }], INVALID, 'keys[0]'],
  ['no alg', [{ kid: 'k', key: hmacSecret('HS256') }], INVALID, 'keys[0]'],
  ['alg none', [{ kid: 'k', alg: 'none', key: hmacSecret('HS256') }], INVALID, 'keys[0]'],
  ['an unsupported alg', [{ kid: 'k', alg: 'ES384', key: p384 }], INVALID, 'keys[0]'],
  ['a duplicate kid', [signingKey('HS256', 'same'), signingKey('ES256', 'same')], INVALID, 'keys'],
  ['a short HS256 secret', [{ kid: 'k', alg: 'HS256', key: randomBytes(31) }], WEAK, 'keys[0].key'],
  ['an HS384 secret of 32 bytes', [{ kid: 'k', alg: 'HS384', key: randomBytes(32) }], WEAK, 'keys[0].key'],
  ['an HS512 secret of 48 bytes', [{ kid: 'k', alg: 'HS512', key: randomBytes(48) }], WEAK, 'keys[0].key'],
  ['a placeholder secret', [{ kid: 'k', alg: 'HS256', key: 'your-super-secret-key-change-this-in-production' }], WEAK, 'keys[0].key'],
  ['a PEM as an HMAC secret', [{ kid: 'k', alg: 'HS256', key: keyPair('RS256').publicKey.export({ type: 'spki', format: 'pem' }) }], INVALID, 'keys[0].key'],
  // RFC 8725 §2.1: the public key in any form it is published or stored in, never a shared secret.
  ['an SPKI DER public key as an HMAC secret', [{ kid: 'k', alg: 'HS256', key: keyPair('RS256').publicKey.export({ type: 'spki', format: 'der' }) }], INVALID, 'keys[0].key'],
  ['a PKCS#1 DER public key as an HMAC secret', [{ kid: 'k', alg: 'HS256', key: keyPair('RS256').publicKey.export({ type: 'pkcs1', format: 'der' }) }], INVALID, 'keys[0].key'],
  ['a PKCS#8 DER private key as an HMAC secret', [{ kid: 'k', alg: 'HS256', key: keyPair('ES256').privateKey.export({ type: 'pkcs8', format: 'der' }) }], INVALID, 'keys[0].key'],
  ['a public JWK\'s JSON as an HMAC secret', [{ kid: 'k', alg: 'HS256', key: JSON.stringify(keyPair('ES256').publicKey.export({ format: 'jwk' })) }], INVALID, 'keys[0].key'],
  ['a private key for HS256', [{ kid: 'k', alg: 'HS256', key: keyPair('ES256').privateKey }], INVALID, 'keys[0].key'],
  ['an EC JWK for HS256', [{ kid: 'k', alg: 'HS256', key: keyPair('ES256').publicKey.export({ format: 'jwk' }) }], INVALID, 'keys[0].key'],
  ['a secret for RS256', [{ kid: 'k', alg: 'RS256', key: hmacSecret('HS256') }], INVALID, 'keys[0].key'],
  ['a secret KeyObject for ES256', [{ kid: 'k', alg: 'ES256', key: createSecretKey(hmacSecret('HS256')) }], INVALID, 'keys[0].key'],
  ['an EC key for RS256', [{ kid: 'k', alg: 'RS256', key: keyPair('ES256').privateKey }], INVALID, 'keys[0].key'],
  ['an RSA key for ES256', [{ kid: 'k', alg: 'ES256', key: keyPair('RS256').privateKey }], INVALID, 'keys[0].key'],
  ['a P-384 key for ES256', [{ kid: 'k', alg: 'ES256', key: p384 }], INVALID, 'keys[0].key'],
  ['an EC key for EdDSA', [{ kid: 'k', alg: 'EdDSA', key: keyPair('ES256').privateKey }], INVALID, 'keys[0].key'],
  ['a 1024-bit RSA key', [{ kid: 'k', alg: 'RS256', key: rsa1024 }], INVALID, 'keys[0].key'],
  ['an encrypted PEM', [{ kid: 'k', alg: 'ES256', key: keyPair('ES256').privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) }], INVALID, 'keys[0].key'],
  ['garbage', [{ kid: 'k', alg: 'ES256', key: 'not a key' }], INVALID, 'keys[0].key'],
  ['a broken JWK', [{ kid: 'k', alg: 'ES256', key: { kty: 'EC', crv: 'P-256', x: 'AA' } }], INVALID, 'keys[0].key'],
  ['a JWK whose kid disagrees', [{ kid: 'k', alg: 'ES256', key: { ...keyPair('ES256').publicKey.export({ format: 'jwk' }), kid: 'other' } }], INVALID, 'keys[0]'],
  ['a JWK whose alg disagrees', [{ kid: 'k', alg: 'ES256', key: { ...keyPair('ES256').publicKey.export({ format: 'jwk' }), alg: 'RS256' } }], INVALID, 'keys[0]'],
  ['a JWK for encryption', [{ kid: 'k', alg: 'ES256', key: { ...keyPair('ES256').publicKey.export({ format: 'jwk' }), use: 'enc' } }], INVALID, 'keys[0]'],
  ['the second entry wrong', [signingKey('ES256'), { kid: 'x', alg: 'RS256', key: 'nope' }], INVALID, 'keys[1].key']
]

t.test('a secret that is a key in any form is refused; one that merely looks like JSON is a secret', async (t) => {
  const jwkJson = JSON.stringify(keyPair('ES256').publicKey.export({ format: 'jwk' }))
  await t.rejects(buildApp(t, { plugin: { secret: jwkJson } }), { code: INVALID, message: /option "secret"/ }, 'the secret option too')
  const pem = keyPair('RS256').publicKey.export({ type: 'spki', format: 'pem' }) as string
  await t.rejects(buildApp(t, { plugin: { secret: pem } }), { code: INVALID, message: /option "secret"/ }, 'a PEM as the secret')
  for (const secret of [`{${hmacSecret('HS256').toString('base64url')}`, JSON.stringify({ note: 'not a key', value: hmacSecret('HS256').toString('base64url') })]) {
    const app = await buildApp(t, { plugin: { secret } })
    t.ok(app.hasDecorator('authenticate'), secret.slice(0, 12))
  }
})

t.test('bad keys are refused at registration, naming the entry', async (t) => {
  for (const [name, keys, code, option] of invalidKeys) {
    await t.rejects(buildApp(t, withKeys(keys)), { code, message: new RegExp(`option "${option.replace(/[.[\]]/g, '\\$&')}"`) }, name)
  }
  await t.rejects(buildApp(t, { plugin: { keys: [signingKey('ES256')] } }), { code: INVALID, message: /option "keys"/ }, 'keys and secret together')
})
