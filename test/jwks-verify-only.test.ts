import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { generateKeyPairSync, randomUUID, type JsonWebKey } from 'node:crypto'
import tokenAuth, { type FastifyTokenAuthOptions, type KeyOption } from '../lib/index.js'
import { bearer, buildApp, login, SECRET, validClaims, type LooseOptions } from './helper.js'
import { countingServer, keyPair, signingKey, signJws, sleep, type CountingServer } from './key-fixtures.js'

/*
 * Verify-only mode: a resource server registers the plugin with a JWKS URL (RFC 7517 §5) and no
 * findUser. Everything here talks HTTP over 127.0.0.1: a real issuer, or a counting JWKS server.
 */

// Real servers on 127.0.0.1 and waits past cooldowns and cache ages add up to seconds: more
// than tap's 30 s default on a busy machine.
t.setTimeout(120_000)

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'
const INVALID = 'FST_TOKEN_AUTH_INVALID_OPTION'
const claims = (overrides: Record<string, unknown> = {}): Record<string, unknown> => validClaims({ iss: ISSUER, aud: AUDIENCE, ...overrides })

/** The issuer: an app with keys and findUser, listening on 127.0.0.1. */
async function issuerApp (t: Test, keys: KeyOption[]): Promise<{ app: FastifyInstance, jwksUrl: string }> {
  const app = await buildApp(t, { plugin: { secret: undefined, keys, issuer: ISSUER, audience: AUDIENCE } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { app, jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json` }
}

/** A resource server: the plugin in verify-only mode, with `/protected` and `/admin`. */
async function resourceApp (t: Test, options: LooseOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, { issuer: ISSUER, audience: AUDIENCE, ...options } as FastifyTokenAuthOptions)
  app.get('/protected', { preHandler: app.authenticate }, async (request) => ({ sub: request.user.sub }))
  app.get('/admin', { preHandler: app.requireScopes('admin') }, async () => ({ admin: true }))
  await app.ready()
  return app
}

/** A JWKS server whose body the test can change, counting its requests. */
async function jwksServer (t: Test, initial: unknown): Promise<CountingServer & { serve: (body: unknown, status?: number) => void }> {
  let body: unknown = initial
  let status = 200
  const server = await countingServer(t, (_request, response) => {
    response.writeHead(status, { 'content-type': 'application/json' })
    response.end(typeof body === 'string' ? body : JSON.stringify(body))
  })
  return Object.assign(server, { serve: (next: unknown, code = 200) => { body = next; status = code } })
}

function publicJwk (alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA', kid: string, withAlg = true): JsonWebKey {
  return { ...keyPair(alg, kid).publicKey.export({ format: 'jwk' }), kid, use: 'sig', ...(withAlg ? { alg } : {}) }
}

function token (alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA', kid: string, keyName = kid): string {
  return signJws({ alg, typ: 'at+jwt', kid }, claims(), alg, keyPair(alg, keyName).privateKey)
}

function get (app: FastifyInstance, bearerToken: string, url = '/protected') {
  return app.inject({ url, headers: bearer(bearerToken) })
}

t.test('a second app in verify-only mode accepts the first app\'s tokens over a real HTTP JWKS', async (t) => {
  const { app: issuer, jwksUrl } = await issuerApp(t, [signingKey('ES256', 'es-1'), signingKey('RS256', 'rs-1')])
  const resource = await resourceApp(t, { jwksUrl })

  const userToken = await login(issuer)
  const res = await get(resource, userToken)
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user1' })
  t.equal((await get(resource, userToken, '/admin')).statusCode, 403, 'requireScopes works')
  t.equal((await get(resource, await login(issuer, 'admin', 'admin-password'), '/admin')).statusCode, 200)
  t.equal((await resource.inject({ method: 'POST', url: '/token' })).statusCode, 404, 'no /token in verify-only mode')
  t.equal((await resource.inject('/.well-known/jwks.json')).statusCode, 404, 'and no JWKS of its own')

  // A token of the second key, and bad tokens, over the same cached JWKS.
  const rs = signJws({ alg: 'RS256', typ: 'at+jwt', kid: 'rs-1' }, claims(), 'RS256', keyPair('RS256', 'rs-1').privateKey)
  t.equal((await get(resource, rs)).statusCode, 200, 'the other published key verifies too')
  const expired = signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'es-1' }, claims({ exp: 1000, iat: 900 }), 'ES256', keyPair('ES256', 'es-1').privateKey)
  const rejected = await get(resource, expired)
  t.equal(rejected.statusCode, 401)
  t.equal(rejected.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN')
  t.equal((await get(resource, token('ES256', 'es-1', 'intruder'))).statusCode, 401, 'a signature by another key under a published kid')
  t.equal((await get(resource, signJws({ alg: 'HS256', typ: 'at+jwt', kid: 'es-1' }, claims(), 'HS256', Buffer.from(SECRET)))).statusCode, 401, 'HS256 is never verified from a JWKS')
  t.equal((await get(resource, 'not.a.jwt')).statusCode, 401)
  t.equal((await get(resource, `${Buffer.from('[]').toString('base64url')}.e30.c2ln`)).statusCode, 401)
})

t.test('keys are cached, and an unknown kid triggers at most one refetch per cooldown', async (t) => {
  const jwks = await jwksServer(t, { keys: [publicJwk('ES256', 'cached')] })
  const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json`, jwksClient: { cooldown: 60_000 } })

  for (let i = 0; i < 5; i++) t.equal((await get(resource, token('ES256', 'cached'))).statusCode, 200)
  t.equal(jwks.hits(), 1, 'one fetch for five tokens')

  // Forged tokens, each with a kid never seen, sequential and in parallel.
  const forged = (): string => token('ES256', randomUUID(), 'cached')
  for (let i = 0; i < 10; i++) {
    const res = await get(resource, forged())
    t.equal(res.statusCode, 401)
    t.equal(res.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN')
  }
  const parallel = await Promise.all(Array.from({ length: 30 }, () => get(resource, forged())))
  t.ok(parallel.every((res) => res.statusCode === 401))
  t.equal(jwks.hits(), 1, 'forty unknown kids within a cooldown of the last fetch: no refetch at all')
  t.equal((await get(resource, token('ES256', 'cached'))).statusCode, 200, 'the known key still works')

  // Past the cooldown, a flood of unknown kids costs one fetch per cooldown, however many tokens.
  const cooldown = 1000
  const short = await jwksServer(t, { keys: [publicJwk('ES256', 'cached')] })
  const other = await resourceApp(t, { jwksUrl: `${short.url}/jwks.json`, jwksClient: { cooldown } })
  t.equal((await get(other, token('ES256', 'cached'))).statusCode, 200)
  await sleep(cooldown + 100)
  const started = Date.now()
  const flood = await Promise.all(Array.from({ length: 50 }, () => get(other, forged())))
  for (let i = 0; i < 20; i++) flood.push(await get(other, forged()))
  const elapsed = Date.now() - started
  t.ok(flood.every((res) => res.statusCode === 401))
  const refetches = short.hits() - 1
  t.ok(refetches >= 1, 'an unknown kid past the cooldown does refetch (that is how rotation is picked up)')
  t.ok(refetches <= 1 + Math.floor(elapsed / cooldown), `${refetches} refetches for 70 forged tokens in ${elapsed} ms`)
})

t.test('a key the issuer adds is picked up by the refetch an unknown kid triggers', async (t) => {
  const jwks = await jwksServer(t, { keys: [publicJwk('EdDSA', 'ed-old')] })
  const cooldown = 50
  const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json`, jwksClient: { cooldown } })
  t.equal((await get(resource, token('EdDSA', 'ed-old'))).statusCode, 200)
  jwks.serve({ keys: [publicJwk('EdDSA', 'ed-new'), publicJwk('EdDSA', 'ed-old')] })
  await sleep(cooldown * 3)
  t.equal((await get(resource, token('EdDSA', 'ed-new'))).statusCode, 200, 'the new kid is fetched and accepted')
  t.equal((await get(resource, token('EdDSA', 'ed-old'))).statusCode, 200)
  // The issuer drops the old key: once the cache is refreshed, its tokens fail.
  jwks.serve({ keys: [publicJwk('EdDSA', 'ed-new')] })
  await sleep(cooldown * 3)
  t.equal((await get(resource, token('EdDSA', 'ed-unknown', 'ed-new'))).statusCode, 401, 'an unknown kid refetches the set')
  t.equal((await get(resource, token('EdDSA', 'ed-old'))).statusCode, 401, 'the removed key no longer verifies')
})

t.test('a JWKS endpoint that is down: 503 with Retry-After, no crash, no token through, and no refetch storm', async (t) => {
  const jwks = await jwksServer(t, 'unavailable')
  jwks.serve('unavailable', 500)
  const cooldown = 500
  const events: string[] = []
  const resource = await resourceApp(t, {
    jwksUrl: `${jwks.url}/jwks.json`,
    jwksClient: { cooldown },
    onAuthEvent: (event) => { events.push(event.reason ?? '') }
  })
  const good = token('ES256', 'down')
  const started = Date.now()
  const first = await get(resource, good)
  t.equal(first.statusCode, 503)
  t.equal(first.json().code, 'FST_TOKEN_AUTH_KEYS_UNAVAILABLE')
  t.match(first.headers['retry-after'], /^[1-9]\d*$/)
  t.notOk(first.headers['www-authenticate'], 'not a challenge: the token is not at fault')
  t.equal(events[0], 'keys_unavailable')

  const burst = await Promise.all(Array.from({ length: 20 }, () => get(resource, good)))
  t.ok(burst.every((res) => res.statusCode === 503), 'no token gets through')
  const elapsed = Date.now() - started
  t.ok(jwks.hits() <= 1 + Math.floor(elapsed / cooldown), `one attempt per cooldown: ${jwks.hits()} for 21 tokens in ${elapsed} ms`)

  // The endpoint recovers: after the cooldown the next token fetches the keys again.
  jwks.serve({ keys: [publicJwk('ES256', 'down')] })
  await sleep(cooldown * 2)
  t.equal((await get(resource, good)).statusCode, 200, 'back once the JWKS answers')
})

t.test('unreachable, hanging, or broken JWKS endpoints all answer 503, never 200 or 500', async (t) => {
  // A port nothing listens on.
  const closed = Fastify()
  await closed.listen({ host: '127.0.0.1', port: 0 })
  const { port } = closed.server.address() as AddressInfo
  await closed.close()

  const hanging = await countingServer(t, () => { /* never answers */ })
  const garbage = await jwksServer(t, 'not json')
  const notASet = await jwksServer(t, { keys: 'none' })
  const privateKeys = await jwksServer(t, { keys: [{ ...keyPair('ES256', 'leaked').privateKey.export({ format: 'jwk' }), kid: 'leaked', alg: 'ES256' }] })
  const redirect = await countingServer(t, (_request, response) => {
    response.writeHead(302, { location: `${garbage.url}/jwks.json` })
    response.end()
  })

  for (const [name, jwksUrl, kid] of [
    ['connection refused', `http://127.0.0.1:${port}/jwks.json`, 'x'],
    ['no answer within the timeout', `${hanging.url}/jwks.json`, 'x'],
    ['not JSON', `${garbage.url}/jwks.json`, 'x'],
    ['not a JWK Set', `${notASet.url}/jwks.json`, 'x'],
    ['private keys published', `${privateKeys.url}/jwks.json`, 'leaked'],
    ['a redirect (not followed)', `${redirect.url}/jwks.json`, 'x']
  ] as const) {
    const resource = await resourceApp(t, { jwksUrl, jwksClient: { timeout: 300 } })
    const res = await get(resource, token('ES256', kid))
    t.equal(res.statusCode, 503, name)
    t.equal(res.json().code, 'FST_TOKEN_AUTH_KEYS_UNAVAILABLE', name)
  }
})

t.test('of keys sharing a kid, the one for signatures and for the algorithm verifies, wherever it stands', async (t) => {
  const encryption = { ...keyPair('ES256', 'enc-key').publicKey.export({ format: 'jwk' }), kid: 'shared' }
  const p384 = { ...generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }), kid: 'shared', alg: 'ES256' }
  const signing = { ...publicJwk('ES256', 'shared'), key_ops: ['verify'] }
  const signedBy = (keyName: string) => signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'shared' }, claims(), 'ES256', keyPair('ES256', keyName).privateKey)
  // RFC 7517 §4.2 `use`, §4.3 `key_ops`: a key for encryption never verifies a signature.
  for (const [name, first] of [['use: enc', { ...encryption, use: 'enc' }], ['key_ops: encrypt', { ...encryption, key_ops: ['encrypt'] }],
    ['a P-384 key labelled ES256', p384]] as const) {
    const jwks = await jwksServer(t, { keys: [first, signing] })
    const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json` })
    t.equal((await get(resource, signedBy('shared'))).statusCode, 200, `${name} listed first: the signing key still verifies`)
    t.equal((await get(resource, signedBy('enc-key'))).statusCode, 401, `${name} listed first: what the other key signed does not`)
  }
})

t.test('one algorithm per published key; tokens with other algorithms never reach the network', async (t) => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' })
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 })
  const jwks = await jwksServer(t, {
    keys: [
      publicJwk('RS256', 'rsa-no-alg', false), publicJwk('PS256', 'pss'), publicJwk('ES256', 'ec-no-alg', false), publicJwk('EdDSA', 'ed-no-alg', false),
      // Two keys under one kid, neither saying its alg: the P-256 one is the ES256 key.
      { ...p384, kid: 'twin' }, { ...publicJwk('ES256', 'twin', false) },
      { ...rsa1024.publicKey.export({ format: 'jwk' }), kid: 'short', alg: 'RS256' }
    ]
  })
  const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json`, jwksClient: { cooldown: 60_000 } })
  t.equal((await get(resource, token('RS256', 'rsa-no-alg'))).statusCode, 200, 'an RSA key without alg verifies RS256')
  t.equal((await get(resource, token('ES256', 'ec-no-alg'))).statusCode, 200, 'an EC key without alg verifies ES256')
  t.equal((await get(resource, token('PS256', 'pss'))).statusCode, 200, 'a PS256 key verifies PS256')
  t.equal((await get(resource, token('EdDSA', 'ed-no-alg'))).statusCode, 200, 'an Ed25519 key without alg verifies EdDSA')
  t.equal((await get(resource, token('ES256', 'twin'))).statusCode, 200, 'of two keys under one kid, the one for the algorithm')
  t.equal((await get(resource, signJws({ alg: 'RS256', typ: 'at+jwt', kid: 'short' }, claims(), 'RS256', rsa1024.privateKey))).statusCode, 401,
    'a published RSA key under 2048 bits verifies nothing')
  const rsa = keyPair('RS256', 'rsa-no-alg').privateKey
  t.equal((await get(resource, signJws({ alg: 'PS256', typ: 'at+jwt', kid: 'rsa-no-alg' }, claims(), 'PS256', rsa))).statusCode, 401,
    'but not PS256: a key without alg is for its usual algorithm only')
  const pss = keyPair('PS256', 'pss').privateKey
  t.equal((await get(resource, signJws({ alg: 'RS256', typ: 'at+jwt', kid: 'pss' }, claims(), 'RS256', pss))).statusCode, 401, 'nor RS256 for a PS256 key')
  const hits = jwks.hits()
  for (const header of [{ alg: 'HS256', kid: 'pss' }, { alg: 'none', kid: 'pss' }, { alg: 'ES384', kid: 'ec-no-alg' }, { alg: 'ES256' }, { alg: 'ES256', kid: 5 }]) {
    const forged = signJws({ typ: 'at+jwt', ...header }, claims(), 'HS256', Buffer.from(SECRET))
    t.equal((await get(resource, forged)).statusCode, 401, JSON.stringify(header))
  }
  t.equal(jwks.hits(), hits, 'refused before any key lookup')
})

t.test('verify-only options are checked at registration', async (t) => {
  const url = 'http://127.0.0.1:9/jwks.json'
  const cases: Array<[string, LooseOptions, string]> = [
    ['jwksUrl with findUser', { jwksUrl: url, findUser: async () => null }, 'jwksUrl'],
    ['jwksUrl with secret', { jwksUrl: url, secret: SECRET }, 'keys'],
    ['jwksUrl with keys', { jwksUrl: url, keys: [signingKey('ES256')] }, 'keys'],
    ['an ftp URL', { jwksUrl: 'ftp://127.0.0.1/jwks.json' }, 'jwksUrl'],
    ['not a URL', { jwksUrl: 'jwks.json' }, 'jwksUrl'],
    ['a number', { jwksUrl: 42 as never }, 'jwksUrl'],
    ['jwksClient not an object', { jwksUrl: url, jwksClient: 5 as never }, 'jwksClient'],
    ['jwksClient without jwksUrl', { secret: SECRET, jwksClient: {} }, 'jwksClient'],
    ['a zero cooldown', { jwksUrl: url, jwksClient: { cooldown: 0 } }, 'jwksClient.cooldown'],
    ['a fractional cacheMaxAge', { jwksUrl: url, jwksClient: { cacheMaxAge: 1.5 } }, 'jwksClient.cacheMaxAge'],
    ['a timeout over a minute', { jwksUrl: url, jwksClient: { timeout: 60_001 } }, 'jwksClient.timeout'],
    ['jwksPath without a slash', { secret: SECRET, jwksPath: 'jwks' }, 'jwksPath'],
    ['jwksPath true', { secret: SECRET, jwksPath: true as never }, 'jwksPath']
  ]
  for (const [name, options, option] of cases) {
    await t.rejects(resourceApp(t, options), { code: INVALID, message: new RegExp(`option "${option.replace('.', '\\.')}"`) }, name)
  }
  // A URL object is fine, and nothing is fetched at registration.
  const jwks = await jwksServer(t, { keys: [] })
  await resourceApp(t, { jwksUrl: new URL(`${jwks.url}/jwks.json`) })
  t.equal(jwks.hits(), 0, 'keys are fetched on first use, so an issuer that is down cannot stop start-up')
})

t.test('verify-only mode refuses to register without issuer and audience (RFC 9068 §4), unless any audience is accepted by name', async (t) => {
  const url = 'http://127.0.0.1:9/jwks.json'
  const spki = keyPair('EdDSA', 'pub').publicKey.export({ type: 'spki', format: 'pem' }) as string
  const publicKeys = { keys: [{ kid: 'pub', alg: 'EdDSA' as const, key: spki }] }
  const cases: Array<[string, LooseOptions, string, RegExp]> = [
    ['jwksUrl without audience', { jwksUrl: url, audience: undefined }, 'audience', /RFC 9068 §4.*acceptAnyAudience/],
    ['jwksUrl without issuer', { jwksUrl: url, issuer: undefined }, 'issuer', /RFC 9068 §4/],
    ['public keys without audience', { ...publicKeys, audience: undefined }, 'audience', /RFC 9068 §4/],
    ['public keys without issuer', { ...publicKeys, issuer: undefined }, 'issuer', /RFC 9068 §4/],
    ['public keys beside a shared secret, without issuer', { keys: [...publicKeys.keys, { kid: 'shared', alg: 'HS256', key: SECRET }], issuer: undefined }, 'issuer', /RFC 9068 §4/],
    ['public keys beside a shared secret, without audience', { keys: [{ kid: 'shared', alg: 'HS256', key: SECRET }, ...publicKeys.keys], audience: undefined }, 'audience', /RFC 9068 §4/],
    ['acceptAnyAudience does not waive the issuer', { jwksUrl: url, issuer: undefined, audience: undefined, acceptAnyAudience: true }, 'issuer', /RFC 9068 §4/],
    ['acceptAnyAudience: false is no waiver', { jwksUrl: url, audience: undefined, acceptAnyAudience: false }, 'audience', /RFC 9068 §4/],
    ['acceptAnyAudience with an audience', { jwksUrl: url, acceptAnyAudience: true }, 'acceptAnyAudience', /contradicts/],
    ['acceptAnyAudience not a boolean', { jwksUrl: url, audience: undefined, acceptAnyAudience: 'yes' as never }, 'acceptAnyAudience', /true or false/],
    ['acceptAnyAudience where tokens are issued', { secret: SECRET, findUser: async () => null, audience: undefined, acceptAnyAudience: true }, 'acceptAnyAudience', /verify-only/]
  ]
  for (const [name, options, option, problem] of cases) {
    await t.rejects(resourceApp(t, options), { code: INVALID, message: new RegExp(`option "${option}" .*${problem.source}`) }, name)
  }
  await t.resolves(resourceApp(t, { jwksUrl: url, audience: undefined, acceptAnyAudience: true }), 'any audience, said so by name')
  await t.resolves(resourceApp(t, { secret: SECRET, issuer: undefined, audience: undefined }), 'a shared HMAC secret is not verify-only: this app could sign')
})

t.test('verify-only mode: a token for another audience is refused with 401 invalid_token; acceptAnyAudience takes it', async (t) => {
  const jwks = await jwksServer(t, { keys: [publicJwk('ES256', 'aud')] })
  const jwksUrl = `${jwks.url}/jwks.json`
  const resource = await resourceApp(t, { jwksUrl })
  const sign = (overrides: Record<string, unknown>) => signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'aud' }, claims(overrides), 'ES256', keyPair('ES256', 'aud').privateKey)
  t.equal((await get(resource, sign({}))).statusCode, 200, 'this API\'s audience')
  t.equal((await get(resource, sign({ aud: [AUDIENCE, 'https://other.example'] }))).statusCode, 200, 'a list that names this API')
  for (const [name, aud] of [['another API', 'https://other.example'], ['a list without this API', ['https://a.example', 'https://b.example']], ['no aud', undefined]] as const) {
    const res = await get(resource, sign({ aud }))
    t.equal(res.statusCode, 401, name)
    t.equal(res.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN', name)
    t.match(res.headers['www-authenticate'], /error="invalid_token"/, name)
  }
  t.equal((await get(resource, sign({ iss: 'https://other-issuer.example' }))).statusCode, 401, 'another issuer')

  const anyAudience = await resourceApp(t, { jwksUrl, audience: undefined, acceptAnyAudience: true })
  t.equal((await get(anyAudience, sign({ aud: 'https://other.example' }))).statusCode, 200, 'as its name says')
  t.equal((await get(anyAudience, sign({ iss: 'https://other-issuer.example' }))).statusCode, 401, 'the issuer is still checked')
  t.equal((await get(anyAudience, sign({ aud: ['https://a.example', 'https://b.example'] }))).statusCode, 200, 'a list of audiences')
  // RFC 9068 §2.2: aud is required; RFC 7519 §4.1.3: a string or an array of strings. Any audience
  // is not no audience, nor one of another type (a host reading `aud` trusts its declared type).
  for (const [name, aud] of [['no aud', undefined], ['null', null], ['a number', 5], ['an object', { 0: AUDIENCE }], ['an empty list', []],
    ['a list with a number', [AUDIENCE, 5]], ['a list in a list', [[AUDIENCE]]]] as const) {
    t.equal((await get(anyAudience, sign({ aud }))).statusCode, 401, `acceptAnyAudience, ${name}`)
    t.equal((await get(resource, sign({ aud }))).statusCode, 401, `audience, ${name}`)
  }
})

t.test('key withdrawal: a key gone from the JWKS stops verifying within jwksClient.cacheMaxAge, without any unknown kid', async (t) => {
  const jwks = await jwksServer(t, { keys: [publicJwk('ES256', 'old'), publicJwk('ES256', 'new')] })
  const cacheMaxAge = 400
  const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json`, jwksClient: { cacheMaxAge, cooldown: 60_000 } })
  t.equal((await get(resource, token('ES256', 'old'))).statusCode, 200)
  jwks.serve({ keys: [publicJwk('ES256', 'new')] })
  t.equal((await get(resource, token('ES256', 'old'))).statusCode, 200, 'within cacheMaxAge the cached set still has it')
  t.equal(jwks.hits(), 1)
  await sleep(cacheMaxAge + 50)
  const refused = await get(resource, token('ES256', 'old'))
  t.equal(refused.statusCode, 401, 'past cacheMaxAge the set is fetched again before the token is checked')
  t.equal(refused.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN')
  t.equal(jwks.hits(), 2, 'by one fetch')
  t.equal((await get(resource, token('ES256', 'new'))).statusCode, 200, 'the key still published verifies')

  // A stale set is never used: past cacheMaxAge with the JWKS endpoint failing, 503, not the old keys.
  jwks.serve('down', 500)
  await sleep(cacheMaxAge + 50)
  t.equal((await get(resource, token('ES256', 'new'))).statusCode, 503, 'no token checked against keys older than cacheMaxAge')
})

t.test('key withdrawal: an unknown kid refetches at once; a storm of random kids costs one fetch per cooldown', async (t) => {
  const jwks = await jwksServer(t, { keys: [publicJwk('EdDSA', 'k1')] })
  const cooldown = 600
  const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json`, jwksClient: { cacheMaxAge: 60_000, cooldown } })
  t.equal((await get(resource, token('EdDSA', 'k1'))).statusCode, 200)
  // The issuer rotates: k2 in, k1 withdrawn. The first token signed by k2 brings the new set.
  jwks.serve({ keys: [publicJwk('EdDSA', 'k2')] })
  await sleep(cooldown + 50)
  t.equal((await get(resource, token('EdDSA', 'k2'))).statusCode, 200, 'the new kid is fetched at once')
  t.equal(jwks.hits(), 2)
  t.equal((await get(resource, token('EdDSA', 'k1'))).statusCode, 401, 'and the withdrawn key is refused from then on')

  // A storm of made-up kids: no fetch within the cooldown, then one per cooldown.
  const forged = (): string => token('EdDSA', randomUUID(), 'k2')
  const first = await Promise.all(Array.from({ length: 100 }, () => get(resource, forged())))
  t.ok(first.every((res) => res.statusCode === 401))
  t.equal(jwks.hits(), 2, '100 unknown kids within the cooldown of the last fetch: none')
  await sleep(cooldown + 50)
  const second = await Promise.all(Array.from({ length: 100 }, () => get(resource, forged())))
  t.ok(second.every((res) => res.statusCode === 401))
  t.equal(jwks.hits(), 3, '100 more past the cooldown: exactly one fetch')
  t.equal((await get(resource, token('EdDSA', 'k2'))).statusCode, 200, 'and the real key works throughout')
})

t.test('key withdrawal: the default cacheMaxAge is 5 minutes', async (t) => {
  const jwks = await jwksServer(t, { keys: [publicJwk('ES256', 'withdrawn')] })
  const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json` })
  // A token valid for an hour, and a clock moved by hand: jose dates its cache with Date.now().
  const long = signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'withdrawn' }, claims({ exp: Math.floor(Date.now() / 1000) + 3600 }), 'ES256', keyPair('ES256', 'withdrawn').privateKey)
  t.equal((await get(resource, long)).statusCode, 200)
  jwks.serve({ keys: [publicJwk('ES256', 'other')] })
  const realNow = Date.now
  let shift = 0
  t.capture(Date, 'now', () => realNow() + shift)
  shift = 5 * 60_000 - 2000
  t.equal((await get(resource, long)).statusCode, 200, 'just under 5 minutes: the cached set')
  t.equal(jwks.hits(), 1)
  shift = 5 * 60_000 + 1000
  t.equal((await get(resource, long)).statusCode, 401, 'just over 5 minutes: refetched, and the key is gone')
  t.equal(jwks.hits(), 2)
})
