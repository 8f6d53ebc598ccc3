import t, { type Test } from 'tap'
import { createHash, createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign, type JsonWebKey, type KeyObject } from 'node:crypto'
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { bearer, buildApp, cheapHash, demoUsers, forge, form, login, tokenRequest, validClaims, FORM, SECRET, VALID_HEADER, type BuildOptions } from './helper.js'
import { hashPassword, type UserRecord } from '../lib/index.js'
import { keyPair, signJws } from './key-fixtures.js'

/*
 * The attack catalogue: the known attacks on JWT verifiers and on password token endpoints, each
 * row naming where it comes from (RFC 8725 "JWT Best Current Practices", RFC 7515/7519/9068, CVE
 * and GHSA ids of the libraries that fell for it, OWASP). Some cases are proven in more detail in
 * access-token.test.ts, rfc6750-bearer.test.ts, rfc6749-token-endpoint.test.ts and
 * throttle.test.ts, keys.test.ts, refresh-token.test.ts and rfc7009-revocation.test.ts; here each
 * is one table row, so the whole catalogue reads in one place.
 */

const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const now = (): number => Math.floor(Date.now() / 1000)

/** Signs `header.payload` with the attacker's RSA private key (RS256). */
function rsaSigned (header: Record<string, unknown>, payload: unknown, key: KeyObject): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`
}

/** Signs an already-encoded input with HMAC-SHA256. */
function hmacSigned (input: string, key: string | Buffer = SECRET): string {
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
}

interface TokenAttack {
  /** What the attacker tries. */
  attack: string
  /** Where the attack is described: an RFC section, a CVE or GHSA id. */
  source: string
  token: string
  /** Not even RFC 6750 b64token syntax: refused as a malformed header (400), before any parsing. */
  malformed?: true
}

async function assertRefused (t: Test, app: FastifyInstance, { attack, source, token, malformed }: TokenAttack): Promise<void> {
  const res = await app.inject({ method: 'GET', url: '/protected', headers: bearer(token) })
  const [status, error, code] = malformed === true
    ? [400, 'invalid_request', 'FST_TOKEN_AUTH_BAD_AUTHORIZATION_HEADER']
    : [401, 'invalid_token', 'FST_TOKEN_AUTH_INVALID_TOKEN']
  t.equal(res.statusCode, status, `${attack} [${source}]`)
  t.match(res.headers['www-authenticate'], `Bearer realm="api", error="${error}"`)
  t.equal(res.json().code, code)
}

async function runTable (t: Test, rows: TokenAttack[], options: BuildOptions = {}): Promise<void> {
  const app = await buildApp(t, options)
  // The control: the same forging code makes a token the app accepts, so every refusal below
  // is the attack's doing and not a broken forge.
  const control = await app.inject({ method: 'GET', url: '/protected', headers: bearer(forge(VALID_HEADER, claims(options))) })
  t.equal(control.statusCode, 200, 'control: an honestly signed token is accepted')
  for (const row of rows) await assertRefused(t, app, row)
}

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'
const STRICT: BuildOptions = { plugin: { issuer: ISSUER, audience: AUDIENCE } }
function claims (options: BuildOptions = {}, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const strict = options.plugin?.issuer === undefined ? {} : { iss: ISSUER, aud: AUDIENCE }
  return validClaims({ sub: 'admin', scope: 'profile admin', ...strict, ...overrides })
}

// The attacker's own key pair, and the public key a server might have been configured with.
const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
const publicPem = attacker.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const publicPkcs1 = attacker.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString()
const publicJwk = attacker.publicKey.export({ format: 'jwk' })

t.test('authenticate', async (t) => {
  t.test('alg none in every casing (RFC 8725 §3.2)', async (t) => {
    const rows: TokenAttack[] = []
    for (const alg of ['none', 'None', 'NONE', 'nOnE', 'none ', '']) {
      const unsigned = `${b64url({ alg, typ: 'at+jwt' })}.${b64url(claims())}`
      rows.push(
        { attack: `alg ${JSON.stringify(alg)}, empty signature`, source: 'CVE-2015-2951, CVE-2022-23540 (jsonwebtoken)', token: `${unsigned}.` },
        { attack: `alg ${JSON.stringify(alg)}, a real HMAC kept`, source: 'RFC 8725 §3.2', token: hmacSigned(unsigned) }
      )
    }
    await runTable(t, rows)
  })

  t.test('algorithm substitution (RFC 8725 §3.1: the verifier pins the algorithm)', async (t) => {
    const rows: TokenAttack[] = [
      { attack: 'HS384 with the right secret', source: 'RFC 8725 §3.1', token: forge({ alg: 'HS384', typ: 'at+jwt' }, claims(), SECRET, 'sha384') },
      { attack: 'HS512 with the right secret', source: 'RFC 8725 §3.1', token: forge({ alg: 'HS512', typ: 'at+jwt' }, claims(), SECRET, 'sha512') },
      { attack: 'RS256 header, HMAC signature', source: 'CVE-2015-9235 (jsonwebtoken), CVE-2016-10555 (jwt-simple)', token: forge({ alg: 'RS256', typ: 'at+jwt' }, claims()) },
      { attack: 'RS256 signed with the attacker\'s key', source: 'RFC 8725 §3.1', token: rsaSigned({ alg: 'RS256', typ: 'at+jwt' }, claims(), attacker.privateKey) },
      { attack: 'ES256 / PS256 / EdDSA headers over an HMAC', source: 'RFC 8725 §2.1', token: forge({ alg: 'ES256', typ: 'at+jwt' }, claims()) },
      { attack: 'alg missing', source: 'RFC 7515 §4.1.1 (alg is required)', token: forge({ typ: 'at+jwt' }, claims()) },
      { attack: 'alg an array', source: 'RFC 7515 §4.1.1', token: forge({ alg: ['HS256'], typ: 'at+jwt' }, claims()) },
      { attack: 'duplicate "alg" keys ending in none', source: 'RFC 7515 §5.2 (duplicate header names)', token: hmacSigned(`${b64url('{"alg":"HS256","typ":"at+jwt","alg":"none"}')}.${b64url(claims())}`) }
    ]
    await runTable(t, rows)
  })

  t.test('key confusion: HS256 signed with public-key-looking or empty secrets', async (t) => {
    // Libraries that pick the key by its looks used an RSA public key as an HMAC secret; the
    // attacker knows the public key, so he can sign. Ours has one secret, and no such token is
    // ever its signature. With RSA and EC keys on the server, see "key sets" below.
    const rows: TokenAttack[] = [
      { attack: 'HMAC keyed with an SPKI public key PEM', source: 'CVE-2023-48223 / GHSA-c2ff-88x2-x9pg (fast-jwt)', token: forge(VALID_HEADER, claims(), publicPem) },
      { attack: 'HMAC keyed with a PKCS#1 "RSA PUBLIC KEY" PEM', source: 'CVE-2023-48223 (fast-jwt)', token: forge(VALID_HEADER, claims(), publicPkcs1) },
      { attack: 'HMAC keyed with the PEM after leading whitespace', source: 'CVE-2026-34950 / GHSA-mvf2-f6gm-w987 (fast-jwt)', token: forge(VALID_HEADER, claims(), `\n ${publicPem}`) },
      { attack: 'HMAC keyed with the PEM after a non-whitespace prefix', source: 'GHSA-ww5h-9m49-7xx4 (fast-jwt)', token: forge(VALID_HEADER, claims(), `#${publicPem}`) },
      { attack: 'HMAC keyed with the public key as a JWK', source: 'CVE-2022-23541 (jsonwebtoken)', token: forge(VALID_HEADER, claims(), JSON.stringify(publicJwk)) },
      { attack: 'HMAC keyed with an empty secret', source: 'CVE-2026-44351 / GHSA-gmvf-9v4p-v8jc (fast-jwt), CVE-2019-20933 (InfluxDB)', token: forge(VALID_HEADER, claims(), '') },
      { attack: 'HMAC keyed with the secret\'s base64 decoding', source: 'RFC 8725 §3.5 (key encoding confusion)', token: forge(VALID_HEADER, claims(), Buffer.from(SECRET, 'base64')) }
    ]
    await runTable(t, rows)
  })

  t.test('key sets: an app that really holds RSA and EC keys (RFC 8725 §2.1, §3.1, §3.10)', async (t) => {
    const rsa = keyPair('RS256', 'attacks')
    const ec = keyPair('ES256', 'attacks')
    const app = await buildApp(t, {
      plugin: { secret: undefined, keys: [{ kid: 'rsa', alg: 'RS256', key: rsa.privateKey }, { kid: 'ec', alg: 'ES256', key: ec.privateKey }] }
    })
    const real = await login(app, 'admin', 'admin-password')
    t.equal((await app.inject({ url: '/protected', headers: bearer(real) })).statusCode, 200, 'control: the app\'s own RS256 token')
    // What any attacker has: the public keys, from the app's own JWKS. The claims are the real
    // token's, so that only the signature and its header are wrong.
    const { keys: jwks } = (await app.inject('/.well-known/jwks.json')).json() as { keys: Array<{ kid: string }> }
    const jwk = (kid: string) => jwks.find((key) => key.kid === kid) as JsonWebKey
    const published = (kid: string) => createPublicKey({ key: jwk(kid), format: 'jwk' })
    const [, payload, signature] = real.split('.') as [string, string, string]
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString())
    const hs = (kid: string | undefined, secret: string | Buffer, alg = 'HS256') => signJws({ alg, typ: 'at+jwt', ...(kid === undefined ? {} : { kid }) }, claims, alg, secret)
    const resigned = (header: Record<string, unknown>, sig = signature) => `${b64url(header)}.${payload}.${sig}`
    const pem = (kid: string, type: 'spki' | 'pkcs1') => published(kid).export({ type, format: 'pem' }) as string
    const rows: TokenAttack[] = [
      { attack: 'HS256 keyed with the app\'s RSA public key (SPKI PEM)', source: 'CVE-2015-9235 (jsonwebtoken), CVE-2023-48223 (fast-jwt)', token: hs('rsa', pem('rsa', 'spki')) },
      { attack: 'HS256 keyed with the app\'s RSA public key (PKCS#1 PEM)', source: 'CVE-2023-48223 / GHSA-c2ff-88x2-x9pg (fast-jwt)', token: hs('rsa', pem('rsa', 'pkcs1')) },
      { attack: 'HS256 keyed with the app\'s RSA public key (DER)', source: 'RFC 8725 §2.1, §3.1', token: hs('rsa', published('rsa').export({ type: 'spki', format: 'der' })) },
      { attack: 'HS256 keyed with the RSA JWK as /.well-known/jwks.json serves it', source: 'CVE-2022-23541 (jsonwebtoken)', token: hs('rsa', JSON.stringify(jwk('rsa'))) },
      { attack: 'HS512 keyed with the app\'s RSA public key', source: 'RFC 8725 §3.1', token: hs('rsa', pem('rsa', 'spki'), 'HS512') },
      { attack: 'HS256 keyed with the app\'s RSA public key, no kid', source: 'CVE-2016-10555 (jwt-simple)', token: hs(undefined, pem('rsa', 'spki')) },
      { attack: 'HS256 keyed with the app\'s EC public key (SPKI PEM)', source: 'CVE-2023-48223 (fast-jwt), CVE-2016-5431 (gree/jose)', token: hs('ec', pem('ec', 'spki')) },
      { attack: 'HS256 keyed with the app\'s EC public key as a JWK', source: 'CVE-2022-23541 (jsonwebtoken)', token: hs('ec', JSON.stringify(jwk('ec'))) },
      { attack: 'the RS256 token, alg switched to HS256', source: 'RFC 8725 §3.1', token: resigned({ alg: 'HS256', typ: 'at+jwt', kid: 'rsa' }) },
      { attack: 'the RS256 token, alg switched to PS256 (the same RSA key)', source: 'RFC 8725 §3.1 (one algorithm per key)', token: resigned({ alg: 'PS256', typ: 'at+jwt', kid: 'rsa' }) },
      { attack: 'a real PS256 signature by the RS256 key', source: 'RFC 8725 §3.1 (one algorithm per key)', token: signJws({ alg: 'PS256', typ: 'at+jwt', kid: 'rsa' }, claims, 'PS256', rsa.privateKey) },
      { attack: 'the RS256 token, alg switched to none, signature kept', source: 'RFC 8725 §3.2', token: resigned({ alg: 'none', typ: 'at+jwt', kid: 'rsa' }) },
      { attack: 'the RS256 token, alg switched to none, signature stripped', source: 'CVE-2015-9235, CVE-2022-23540 (jsonwebtoken)', token: resigned({ alg: 'none', typ: 'at+jwt', kid: 'rsa' }, '') },
      { attack: 'an unknown kid, signed by the attacker\'s own RSA key', source: 'RFC 8725 §3.10', token: rsaSigned({ alg: 'RS256', typ: 'at+jwt', kid: 'attacker' }, claims, attacker.privateKey) },
      { attack: 'an unknown kid over the app\'s real signature', source: 'RFC 7515 §4.1.4', token: resigned({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa-2' }) },
      { attack: 'the app\'s RSA kid, signed by the attacker\'s RSA key', source: 'RFC 8725 §3.10 (kid picks a key, never brings one)', token: rsaSigned({ alg: 'RS256', typ: 'at+jwt', kid: 'rsa' }, claims, attacker.privateKey) },
      { attack: 'transplant: the RSA signature under the EC kid', source: 'RFC 7515 §5.2', token: resigned({ alg: 'ES256', typ: 'at+jwt', kid: 'ec' }) },
      { attack: 'transplant: a real EC signature under the RSA kid, alg ES256', source: 'RFC 8725 §3.1', token: signJws({ alg: 'ES256', typ: 'at+jwt', kid: 'rsa' }, claims, 'ES256', ec.privateKey) },
      { attack: 'transplant: a real RSA signature under the EC kid, alg RS256', source: 'RFC 8725 §3.1', token: signJws({ alg: 'RS256', typ: 'at+jwt', kid: 'ec' }, claims, 'RS256', rsa.privateKey) },
      { attack: 'an ES256 signature of zeros (r = s = 0)', source: 'CVE-2022-21449 (Java "psychic signatures")', token: resigned({ alg: 'ES256', typ: 'at+jwt', kid: 'ec' }, Buffer.alloc(64).toString('base64url')) }
    ]
    for (const row of rows) await assertRefused(t, app, row)
  })

  t.test('kid, jku, x5u, jwk and x5c headers are never followed (RFC 8725 §3.10)', async (t) => {
    // A key server the attacker controls, on loopback: any fetch at all is a failure.
    let fetched = 0
    const keyServer = createServer((_req, res) => {
      fetched++
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ keys: [{ ...publicJwk, kid: 'attacker', alg: 'RS256', use: 'sig' }] }))
    })
    await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve))
    t.teardown(() => keyServer.close())
    const url = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}/jwks.json`

    const attackerSecret = 'attacker-secret-6c1e9f3a7d2b5e8f0a4c'
    const rows: TokenAttack[] = [
      { attack: 'jku to the attacker\'s JWKS, RS256 by his key', source: 'RFC 8725 §3.10, CVE-2026-32301 (Centrifugo)', token: rsaSigned({ alg: 'RS256', typ: 'at+jwt', jku: url, kid: 'attacker' }, claims(), attacker.privateKey) },
      { attack: 'jku with an HS256 token', source: 'RFC 8725 §3.10', token: forge({ ...VALID_HEADER, jku: url, kid: 'attacker' }, claims(), attackerSecret) },
      { attack: 'x5u to the attacker\'s certificate URL', source: 'RFC 8725 §3.10', token: rsaSigned({ alg: 'RS256', typ: 'at+jwt', x5u: url }, claims(), attacker.privateKey) },
      { attack: 'embedded jwk (RSA public key), RS256 by its private key', source: 'CVE-2018-0114 (node-jose), CVE-2026-34240 (dart jose)', token: rsaSigned({ alg: 'RS256', typ: 'at+jwt', jwk: publicJwk }, claims(), attacker.privateKey) },
      { attack: 'embedded jwk (oct key), HS256 by that key', source: 'CVE-2018-0114 (node-jose)', token: forge({ ...VALID_HEADER, jwk: { kty: 'oct', k: b64url(attackerSecret) } }, claims(), attackerSecret) },
      { attack: 'embedded x5c chain', source: 'RFC 8725 §3.10', token: rsaSigned({ alg: 'RS256', typ: 'at+jwt', x5c: [publicPem.replace(/-----[A-Z ]+-----|\n/g, '')] }, claims(), attacker.privateKey) },
      { attack: 'kid path traversal to /dev/null, empty key', source: 'RFC 8725 §3.10 (kid as a file path)', token: forge({ ...VALID_HEADER, kid: '../../../../../../dev/null' }, claims(), '') },
      { attack: 'kid SQL injection selecting a known key', source: 'RFC 8725 §3.10 (kid in a database query)', token: forge({ ...VALID_HEADER, kid: "x' UNION SELECT 'key' --" }, claims(), 'key') },
      { attack: 'kid command injection', source: 'RFC 8725 §3.10', token: forge({ ...VALID_HEADER, kid: '/dev/null; curl 127.0.0.1' }, claims(), attackerSecret) }
    ]
    await runTable(t, rows)
    t.equal(fetched, 0, 'the key server was never contacted')
  })

  t.test('stripped and transplanted signatures', async (t) => {
    const app = await buildApp(t)
    const user = (await login(app)).split('.') as [string, string, string]
    const admin = (await login(app, 'admin', 'admin-password')).split('.') as [string, string, string]
    const other = await buildApp(t, { plugin: { secret: 'another-app-secret-51d9e3b7a2c4f8061e' } })
    const foreign = (await login(other, 'admin', 'admin-password')).split('.') as [string, string, string]
    const rows: TokenAttack[] = [
      { attack: 'signature removed, dot kept', source: 'CVE-2020-28042 (ServiceStack null signature)', token: `${user[0]}.${user[1]}.` },
      { attack: 'signature segment removed', source: 'RFC 7515 §7.1', token: `${user[0]}.${user[1]}` },
      { attack: 'admin payload under user1\'s signature', source: 'RFC 7515 §5.2 (signature over header and payload)', token: `${user[0]}.${admin[1]}.${user[2]}` },
      { attack: 'user1\'s signature on an edited payload', source: 'RFC 7515 §5.2', token: `${user[0]}.${b64url({ ...JSON.parse(Buffer.from(user[1], 'base64url').toString()), scope: 'profile admin' })}.${user[2]}` },
      { attack: 'an edited header under the old signature', source: 'RFC 7515 §5.2', token: `${b64url({ alg: 'HS256', typ: 'at+jwt', kid: 'x' })}.${user[1]}.${user[2]}` },
      { attack: 'a token of another app (another secret)', source: 'RFC 8725 §3.8 (cross-app substitution)', token: foreign.join('.') },
      { attack: 'the signature truncated to 16 bytes', source: 'RFC 7518 §3.2 (full-length HMAC output)', token: `${user[0]}.${user[1]}.${Buffer.from(user[2], 'base64url').subarray(0, 16).toString('base64url')}` },
      { attack: 'the signature of all zero bytes', source: 'CVE-2022-21449 (ECDSA "psychic signatures"), here for HMAC', token: `${user[0]}.${user[1]}.${Buffer.alloc(32).toString('base64url')}` }
    ]
    for (const row of rows) await assertRefused(t, app, row)
  })

  t.test('expired, not yet valid, without exp, claims of the wrong type', async (t) => {
    const rows: TokenAttack[] = [
      { attack: 'exp an hour ago', source: 'RFC 7519 §4.1.4', token: forge(VALID_HEADER, claims({}, { iat: now() - 7200, exp: now() - 3600 })) },
      { attack: 'nbf an hour ahead', source: 'RFC 7519 §4.1.5', token: forge(VALID_HEADER, claims({}, { nbf: now() + 3600 })) },
      { attack: 'no exp at all', source: 'RFC 9068 §2.2 (exp required)', token: forge(VALID_HEADER, claims({}, { exp: undefined })) },
      { attack: 'exp as a string', source: 'CVE-2026-25537 (Rust jsonwebtoken: a mistyped claim skipped)', token: forge(VALID_HEADER, claims({}, { exp: String(now() + 600) })) },
      { attack: 'exp null', source: 'RFC 7519 §2 (NumericDate)', token: forge(VALID_HEADER, claims({}, { exp: null })) },
      { attack: 'nbf as a string in the future', source: 'CVE-2026-25537', token: forge(VALID_HEADER, claims({}, { nbf: String(now() + 3600) })) },
      { attack: 'iat a day ahead', source: 'RFC 9068 §4 (iat)', token: forge(VALID_HEADER, claims({}, { iat: now() + 86400, exp: now() + 90000 })) },
      { attack: 'the claims as an array', source: 'RFC 7519 §7.2 (a JSON object)', token: forge(VALID_HEADER, [claims()]) }
    ]
    await runTable(t, rows)
  })

  t.test('wrong iss, aud or typ (RFC 8725 §3.8, §3.9, §3.11)', async (t) => {
    const base = claims(STRICT)
    const rows: TokenAttack[] = [
      { attack: 'another issuer', source: 'RFC 8725 §3.8', token: forge(VALID_HEADER, { ...base, iss: 'https://evil.example' }) },
      { attack: 'iss as an array holding the right one', source: 'CVE-2025-30144 (fast-jwt)', token: forge(VALID_HEADER, { ...base, iss: ['https://evil.example', ISSUER] }) },
      { attack: 'iss with a trailing slash', source: 'RFC 8725 §3.8 (exact match)', token: forge(VALID_HEADER, { ...base, iss: `${ISSUER}/` }) },
      { attack: 'no iss', source: 'RFC 9068 §2.2', token: forge(VALID_HEADER, { ...base, iss: undefined }) },
      { attack: 'another audience', source: 'RFC 8725 §3.9', token: forge(VALID_HEADER, { ...base, aud: 'https://other-api.example' }) },
      { attack: 'an audience that only starts with ours', source: 'RFC 8725 §3.9', token: forge(VALID_HEADER, { ...base, aud: `${AUDIENCE}.evil.example` }) },
      { attack: 'no aud', source: 'RFC 9068 §2.2', token: forge(VALID_HEADER, { ...base, aud: undefined }) },
      { attack: 'typ JWT: an ID token or another JWT of the same issuer', source: 'RFC 8725 §3.11, §2.8 (cross-JWT confusion)', token: forge({ alg: 'HS256', typ: 'JWT' }, base) },
      { attack: 'no typ', source: 'RFC 9068 §4 (typ at+jwt required)', token: forge({ alg: 'HS256' }, base) },
      { attack: 'typ of another explicitly typed JWT', source: 'RFC 8725 §3.11', token: forge({ alg: 'HS256', typ: 'secevent+jwt' }, base) }
    ]
    await runTable(t, rows, STRICT)
  })

  t.test('unknown crit extensions (RFC 7515 §4.1.11)', async (t) => {
    const rows: TokenAttack[] = [
      { attack: 'crit naming an unknown extension', source: 'CVE-2026-35042 / GHSA-hm7r-c7qw-ghp6 (fast-jwt)', token: forge({ ...VALID_HEADER, crit: ['x-policy'], 'x-policy': 'require-mfa' }, claims()) },
      { attack: 'crit b64:false (unencoded payload, RFC 7797)', source: 'CVE-2026-32597 (PyJWT), CVE-2025-59420 (Authlib)', token: forge({ ...VALID_HEADER, crit: ['b64'], b64: false }, claims()) },
      { attack: 'crit empty', source: 'RFC 7515 §4.1.11', token: forge({ ...VALID_HEADER, crit: [] }, claims()) },
      { attack: 'crit naming a standard header', source: 'RFC 7515 §4.1.11', token: forge({ ...VALID_HEADER, crit: ['alg'] }, claims()) },
      { attack: 'crit not an array', source: 'RFC 7515 §4.1.11', token: forge({ ...VALID_HEADER, crit: 'x-policy', 'x-policy': 1 }, claims()) },
      // Regression, found by test/fuzz.test.ts: fast-jwt skips its crit check for a falsy value.
      ...[null, false, 0, ''].map((crit) => ({ attack: `crit ${JSON.stringify(crit)}`, source: 'RFC 7515 §5.2 step 5', token: forge({ ...VALID_HEADER, crit }, claims()) }))
    ]
    await runTable(t, rows)
  })

  t.test('oversized and malformed tokens', async (t) => {
    const header = b64url(VALID_HEADER)
    const payload = b64url(claims())
    const rows: TokenAttack[] = [
      { attack: 'a 100 KB token, validly signed', source: 'OWASP API4:2023 (unrestricted resource consumption)', token: forge(VALID_HEADER, claims({}, { pad: 'x'.repeat(75_000) })) },
      { attack: 'a header of 6000 nested arrays', source: 'OWASP API4:2023', token: hmacSigned(`${b64url('{"alg":"HS256","typ":"at+jwt","x":' + '['.repeat(3000) + ']'.repeat(3000) + '}')}.${payload}`) },
      { attack: 'five segments (a JWE shape)', source: 'RFC 7516 §9 (telling JWS from JWE)', token: `${header}.${payload}.AAAA.AAAA.AAAA` },
      { attack: 'four segments', source: 'RFC 7515 §7.1', token: `${forge(VALID_HEADER, claims())}.AAAA` },
      { attack: 'empty segments', source: 'RFC 7515 §7.1', token: '..' },
      { attack: 'a header that is not JSON', source: 'RFC 7515 §5.2', token: hmacSigned(`${b64url('{"alg":"HS256",')}.${payload}`) },
      { attack: 'a header that is JSON null', source: 'RFC 7515 §5.2', token: hmacSigned(`${b64url('null')}.${payload}`) },
      { attack: 'base64 padding inside the token', source: 'RFC 6750 §2.1 (b64token)', token: hmacSigned(`${header}==.${payload}`), malformed: true },
      { attack: 'base64 padding after the signature', source: 'RFC 7515 §2 (base64url without padding)', token: `${forge(VALID_HEADER, claims())}==` },
      { attack: 'standard base64 characters', source: 'RFC 7515 §2', token: hmacSigned(`${header}.${payload}`).replace(/-/g, '+').replace(/_/g, '/') + '+/' },
      { attack: 'whitespace inside the token', source: 'RFC 6750 §2.1 (b64token)', token: `${header}. ${payload}`, malformed: true },
      { attack: 'non-ASCII look-alike characters', source: 'RFC 6750 §2.1 (b64token)', token: forge(VALID_HEADER, claims()).replace('e', '\u0435'), malformed: true },
      { attack: 'a payload that is not base64url', source: 'RFC 7515 §2', token: hmacSigned(`${header}.${payload.slice(0, 10)}.${payload.slice(10)}`) }
    ]
    await runTable(t, rows)
  })

  t.test('an Authorization header over Node\'s 16 KB limit: 431 on a real socket, not a crash', async (t) => {
    const app = await buildApp(t)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/protected', headers: bearer('a'.repeat(64 * 1024)) }, (res) => {
        res.resume()
        resolve(res.statusCode as number)
      })
      req.on('error', reject)
      req.end()
    })
    t.equal(status, 431, 'Request Header Fields Too Large (RFC 6585 §5)')
    const after = await app.inject({ method: 'GET', url: '/protected', headers: bearer(await login(app)) })
    t.equal(after.statusCode, 200, 'the server keeps serving')
  })
})

/** Asserts an RFC 6749 §5.2 answer with this status and code. */
function assertOAuth (t: Test, res: LightMyRequestResponse, status: number, code: string, label: string): void {
  t.equal(res.statusCode, status, label)
  t.equal(res.json().error, code, label)
  t.equal(res.headers['cache-control'], 'no-store')
}

/** A findUser over the demo users (and `extra`) that records every username it is asked for. */
async function recordingUsers (extra: UserRecord[] = []) {
  const users = await demoUsers()
  for (const user of extra) users.set(user.username, user)
  const asked: string[] = []
  const findUser = (username: string): UserRecord | null => {
    asked.push(username)
    return users.get(username) ?? null
  }
  return { asked, findUser }
}

const GOOD = Object.freeze({ grant_type: 'password', username: 'user1', password: 'password1' })

t.test('/token', async (t) => {
  t.test('content-type confusion: only a form body is ever read', async (t) => {
    const record = await recordingUsers()
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, findUser: record.findUser } })
    const json = JSON.stringify(GOOD)
    const cases: Array<[string, string, string, string]> = [
      ['JSON', 'application/json', json, 'CVE-2025-32442 (fastify)'],
      ['JSON with a tab before the parameters', 'application/json\t; charset=utf-8', json, 'CVE-2026-25223 / GHSA-jx2c-rxcm-jvmq (fastify)'],
      ['JSON in other casing', 'Application/JSON', json, 'CVE-2025-32442 (fastify)'],
      ['JSON with an empty parameter list', 'application/json;', json, 'GHSA-573f-x89g-hqp9 (fastify)'],
      ['JSON labelled as a form', 'application/x-www-form-urlencoded', json, 'RFC 6749 §3.2'],
      ['a form labelled with two types', 'application/x-www-form-urlencoded, application/json', form(GOOD), 'RFC 9110 §8.3'],
      ['a form under a look-alike type', 'application/x-www-form-urlencodedx', form(GOOD), 'RFC 9110 §8.3'],
      ['multipart', 'multipart/form-data; boundary=X', '--X\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\npassword\r\n--X--\r\n', 'RFC 6749 §3.2'],
      ['text/plain', 'text/plain', form(GOOD), 'RFC 6749 §3.2 (a CSRF-able simple request)']
    ]
    for (const [name, type, payload, source] of cases) {
      const res = await app.inject({ method: 'POST', url: '/token', headers: { 'content-type': type }, payload })
      assertOAuth(t, res, 400, 'invalid_request', `${name} [${source}]`)
    }
    t.same(record.asked, [], 'no body but a form ever reached findUser')
    // Parameters in the query string are not the request's (RFC 6749 §3.2: the entity-body).
    const query = await app.inject({ method: 'POST', url: '/token?username=admin&password=admin-password&scope=admin', headers: FORM, payload: form(GOOD) })
    t.equal(query.statusCode, 200)
    t.equal(JSON.parse(Buffer.from(query.json().access_token.split('.')[1], 'base64url').toString()).sub, 'user1', 'the query string is ignored')
  })

  t.test('duplicated and array fields (RFC 6749 §3.2: no parameter more than once)', async (t) => {
    const record = await recordingUsers()
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, findUser: record.findUser } })
    for (const payload of [
      form({ ...GOOD, username: ['admin', 'user1'] }),
      form({ ...GOOD, password: ['wrong', 'password1'] }),
      form({ ...GOOD, grant_type: ['password', 'refresh_token'] }),
      form({ ...GOOD, scope: ['profile', 'admin'] }),
      'grant_type=password&username[]=admin&password=admin-password',
      'grant_type=password&username[0]=admin&username[1]=user1&password=password1',
      'grant_type=password&username=user1&password[$ne]=x'
    ]) {
      const res = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload })
      assertOAuth(t, res, 400, 'invalid_request', `${payload} [OWASP HTTP parameter pollution, NoSQL operator injection]`)
    }
    t.same(record.asked, [], 'no repeated field was picked apart and looked up')
    // Unknown parameters are ignored (RFC 6749 §3.2), including the ones aimed at prototypes.
    const polluting = 'grant_type=password&username=user1&password=password1&__proto__[admin]=1&constructor[prototype][admin]=1'
    t.equal((await app.inject({ method: 'POST', url: '/token', headers: FORM, payload: polluting })).statusCode, 200)
    t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was polluted [CWE-1321]')
  })

  t.test('huge fields are refused before any lookup or hashing', async (t) => {
    const record = await recordingUsers()
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, findUser: record.findUser } })
    const cases: Array<[string, Record<string, string>, string]> = [
      ['a 1025-character password', { ...GOOD, password: 'p'.repeat(1025) }, 'CVE-2013-1443 (Django long-password DoS)'],
      ['a 257-character username', { ...GOOD, username: 'u'.repeat(257) }, 'OWASP API4:2023'],
      ['a body over 4096 bytes', { ...GOOD, filler: 'x'.repeat(5000) }, 'OWASP API4:2023'],
      ['a 2000-character scope', { ...GOOD, scope: 'a '.repeat(1000).trim() }, 'OWASP API4:2023']
    ]
    for (const [name, fields, source] of cases) {
      const res = await tokenRequest(app, fields)
      t.equal(res.statusCode, 400, `${name} [${source}]`)
      t.match(res.json().error, /^invalid_(request|scope)$/)
    }
    t.same(record.asked, [], 'none reached findUser, so none reached argon2')
  })

  t.test('unicode look-alike usernames do not reach another account', async (t) => {
    const record = await recordingUsers([{ username: 'jos\u00e9', passwordHash: await cheapHash('password1') }])
    const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: { perUsernameAndIp: { max: 3 }, perUsername: false }, findUser: record.findUser } })
    // Sources: CVE-2019-19844 (Django: Unicode case mapping sent a reset to another account),
    // RFC 8265 (PRECIS usernames), Unicode TR #36/#39 (confusables).
    const lookalikes = ['us\u0435r1' /* Cyrillic ie */, '\uff55\uff53\uff45\uff52\uff11' /* fullwidth */, 'user1\u200b' /* zero-width space */, 'u\u0455er1']
    for (const name of lookalikes) {
      assertOAuth(t, await tokenRequest(app, { ...GOOD, username: name }), 400, 'invalid_grant', `${JSON.stringify(name)} gets the one invalid_grant`)
    }
    t.same(record.asked, lookalikes, 'findUser saw the look-alikes as they are, never "user1"')
    // Their failures are counted under their own names: user1's account is untouched.
    for (let i = 0; i < 3; i++) await tokenRequest(app, { ...GOOD, username: lookalikes[0] as string })
    t.equal((await tokenRequest(app, { ...GOOD, username: lookalikes[0] as string })).statusCode, 429, 'the look-alike is throttled')
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200, 'user1 is not')

    // NFC and NFD spell the same name: one account, and one failure count (so the other form
    // is no way around the throttle).
    const nfd = 'jose\u0301'
    t.equal((await tokenRequest(app, { ...GOOD, username: nfd })).statusCode, 200, 'NFD reaches the NFC account')
    for (let i = 0; i < 3; i++) await tokenRequest(app, { ...GOOD, username: i % 2 === 0 ? nfd : 'jos\u00e9', password: 'wrong' })
    t.equal((await tokenRequest(app, { ...GOOD, username: 'jos\u00e9' })).statusCode, 429, 'failures in both forms add up')
  })

  t.test('no enumeration by status or body (OWASP ASVS 6.3.8)', async (t) => {
    const app = await buildApp(t, { plugin: { rateLimit: false } })
    const answers = []
    for (const fields of [{ ...GOOD, password: 'wrong' }, { ...GOOD, username: 'nobody' }, { ...GOOD, username: 'disabled-user' }]) {
      const res = await tokenRequest(app, fields)
      answers.push({ status: res.statusCode, body: res.body, type: res.headers['content-type'], length: res.headers['content-length'] })
    }
    t.same(answers[1], answers[0], 'unknown user = wrong password')
    t.same(answers[2], answers[0], 'disabled user = wrong password')
    // Throttling tells nothing either: unknown usernames are counted like real ones.
    const statuses = async (username: string) => {
      const seen = []
      for (let i = 0; i < 6; i++) seen.push((await tokenRequest(app, { ...GOOD, username, password: 'wrong' })).statusCode)
      return seen
    }
    t.same(await statuses('nobody-at-all'), await statuses('admin'), 'the same 429 after the same number of failures')
  })

  t.test('no enumeration by timing, with the real OWASP argon2 parameters (CWE-208)', async (t) => {
    // The plugin's defaults (m = 19 MiB, t = 2), not the cheap test ones: the point is that an
    // unknown user costs a real verification. Samples are interleaved and compared by median,
    // with a wide band, so a loaded machine slows both sides alike and cannot flake the check;
    // without the dummy hash an unknown user answers some fifty times faster and falls far out.
    const real = { username: 'user1', passwordHash: await hashPassword('password1') }
    const app = await buildApp(t, {
      plugin: { rateLimit: false, loginThrottle: false, password: {}, findUser: (name) => name === 'user1' ? real : null }
    })
    const time = async (fields: Record<string, string>): Promise<number> => {
      const start = process.hrtime.bigint()
      const res = await tokenRequest(app, fields)
      const elapsed = Number(process.hrtime.bigint() - start) / 1e6
      t.equal(res.statusCode, 400)
      return elapsed
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
    const unknown: number[] = []
    const wrong: number[] = []
    await time({ ...GOOD, password: 'warm-up' })
    for (let i = 0; i < 11; i++) {
      unknown.push(await time({ ...GOOD, username: `ghost-${i}` }))
      wrong.push(await time({ ...GOOD, password: `wrong-${i}` }))
    }
    const ratio = median(unknown) / median(wrong)
    t.comment(`median unknown user ${median(unknown).toFixed(1)} ms, wrong password ${median(wrong).toFixed(1)} ms`)
    t.ok(ratio > 0.5 && ratio < 2, `the medians are within a factor of two (ratio ${ratio.toFixed(2)})`)
  })

  t.test('no enumeration by timing for an account whose hash has older, cheaper parameters (CWE-208)', async (t) => {
    // Until its next login rehashes it, an account keeps the hash it was given (here 1 MiB, one
    // pass), which verifies some fifty times faster than the dummy hash an unknown user costs:
    // its wrong passwords must not be refused sooner. The same interleaved medians as above.
    const old = { username: 'user1', passwordHash: await hashPassword('password1', { memoryCost: 1024, timeCost: 1, parallelism: 1 }) }
    const app = await buildApp(t, {
      plugin: { rateLimit: false, loginThrottle: false, password: {}, findUser: (name) => name === 'user1' ? old : null }
    })
    const time = async (fields: Record<string, string>): Promise<number> => {
      const start = process.hrtime.bigint()
      const res = await tokenRequest(app, fields)
      t.equal(res.json().error, 'invalid_grant')
      return Number(process.hrtime.bigint() - start) / 1e6
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
    const unknown: number[] = []
    const wrong: number[] = []
    for (let i = 0; i < 11; i++) {
      unknown.push(await time({ ...GOOD, username: `ghost-${i}` }))
      wrong.push(await time({ ...GOOD, password: `wrong-${i}` }))
    }
    const ratio = median(unknown) / median(wrong)
    t.comment(`median unknown user ${median(unknown).toFixed(1)} ms, wrong password for the old hash ${median(wrong).toFixed(1)} ms`)
    t.ok(ratio > 0.5 && ratio < 2, `the medians are within a factor of two (ratio ${ratio.toFixed(2)})`)
    // The right password is not held back: the login succeeds (and the hash is due a rehash).
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
  })

  t.test('brute force (RFC 6749 §4.3.2; OWASP ASVS 6.3.1; CWE-307)', async (t) => {
    t.test('one IP, one username: the per-(username, IP) limit', async (t) => {
      const app = await buildApp(t)
      for (let i = 0; i < 5; i++) assertOAuth(t, await tokenRequest(app, { ...GOOD, password: `guess-${i}` }), 400, 'invalid_grant', `guess ${i}`)
      assertOAuth(t, await tokenRequest(app, GOOD), 429, 'too_many_requests', 'even the right password waits')
    })

    t.test('one IP, many usernames (password spraying): the per-IP limit', async (t) => {
      const app = await buildApp(t)
      const statuses = []
      for (let i = 0; i < 31; i++) statuses.push((await tokenRequest(app, { ...GOOD, username: `user-${i}`, password: 'Summer2025!' })).statusCode)
      t.same(statuses.slice(0, 30), Array(30).fill(400))
      t.equal(statuses[30], 429, 'the 31st request in a minute')
    })

    t.test('many IPs (trustProxy, X-Forwarded-For), one username: the per-username backoff', async (t) => {
      const app = await buildApp(t, { server: { trustProxy: true } })
      for (let i = 0; i < 10; i++) {
        const res = await tokenRequest(app, { ...GOOD, password: `guess-${i}` }, { 'x-forwarded-for': `198.51.100.${i + 1}` })
        assertOAuth(t, res, 400, 'invalid_grant', `guess ${i} from its own address`)
      }
      const fresh = await tokenRequest(app, { ...GOOD, password: 'guess-10' }, { 'x-forwarded-for': '203.0.113.77' })
      assertOAuth(t, fresh, 429, 'too_many_requests', 'an address never seen before is refused too')
      t.ok(Number(fresh.headers['retry-after']) >= 1)
    })

    t.test('without trustProxy a spoofed X-Forwarded-For buys no fresh address', async (t) => {
      const app = await buildApp(t, { plugin: { loginThrottle: { perUsername: false } } })
      for (let i = 0; i < 5; i++) await tokenRequest(app, { ...GOOD, password: `guess-${i}` }, { 'x-forwarded-for': `198.51.100.${i + 1}` })
      const res = await tokenRequest(app, { ...GOOD, password: 'guess-5' }, { 'x-forwarded-for': '203.0.113.9' })
      assertOAuth(t, res, 429, 'too_many_requests', 'GHSA-444r-cwp2-x5xf (forwarded headers trusted without a proxy)')
    })
  })
})

t.test('refresh tokens (RFC 6749 §6, §10.4; RFC 9700 §4.14.2) and /revoke (RFC 7009)', async (t) => {
  const app = await buildApp(t, { plugin: { refreshTokens: true, rateLimit: false, clients: [{ id: 'web' }, { id: 'mobile' }] } })
  const web = { client_id: 'web' }
  const mobile = { client_id: 'mobile' }
  const session = async (): Promise<{ access_token: string, refresh_token: string }> => (await tokenRequest(app, { ...GOOD, ...web })).json()
  const refresh = (token: string, client = web) => tokenRequest(app, { grant_type: 'refresh_token', refresh_token: token, ...client })
  const revoke = (token: string, client = web) => tokenRequest(app, { token, ...client }, {}, '/revoke')
  // An answer as [status, error code]: RFC 6749 §5.2 from /token and /revoke, RFC 6750 §3 from a protected route.
  const oauth = (res: LightMyRequestResponse) => [res.statusCode, res.json().error]
  const onProtected = async (token: string) => {
    const res = await app.inject({ url: '/protected', headers: bearer(token) })
    return [res.statusCode, /error="([a-z_]+)"/.exec(String(res.headers['www-authenticate']))?.[1]]
  }
  const random = (bytes: number) => randomBytes(bytes).toString('base64url')

  // Two rotations back: the retry grace covers only the token the last rotation replaced.
  const rotated = await session()
  const current = (await refresh((await refresh(rotated.refresh_token)).json().refresh_token)).json().refresh_token as string
  const [stolen, revoked, other, guessed, forged] = [await session(), await session(), await session(), await session(), await session()]
  t.equal((await revoke(revoked.refresh_token)).statusCode, 200)
  // The first part of a refresh token names the user's store key, a hash of `sub`, which anyone
  // who has seen an access token can compute; the second locates the family, 128 random bits
  // (the family's id, which access tokens carry, is a hash of it); the store compares a hash of
  // the whole token.
  const [userKey, familyId] = forged.refresh_token.split('.') as [string, string]

  const rows: Array<{ attack: string, source: string, attempt: () => Promise<unknown[]>, expected: unknown[] }> = [
    { attack: 'a refresh token two rotations back presented again', source: 'RFC 9700 §4.14.2, OWASP ASVS 10.4.5', attempt: async () => oauth(await refresh(rotated.refresh_token)), expected: [400, 'invalid_grant'] },
    { attack: 'the family\'s newest token, after that reuse', source: 'RFC 9700 §4.14.2 (reuse revokes the family)', attempt: async () => oauth(await refresh(current)), expected: [400, 'invalid_grant'] },
    { attack: 'a refresh token presented by another client', source: 'RFC 6749 §10.4', attempt: async () => oauth(await refresh(stolen.refresh_token, mobile)), expected: [400, 'invalid_grant'] },
    { attack: 'a refresh token revoked by another client', source: 'RFC 7009 §2.1', attempt: async () => oauth(await revoke(stolen.refresh_token, mobile)), expected: [400, 'unauthorized_client'] },
    { attack: 'a revoked refresh token', source: 'RFC 7009 §2.2', attempt: async () => oauth(await refresh(revoked.refresh_token)), expected: [400, 'invalid_grant'] },
    { attack: 'an access token presented as a refresh token', source: 'RFC 6749 §1.5 (refresh tokens are their own kind)', attempt: async () => oauth(await refresh(other.access_token)), expected: [400, 'invalid_grant'] },
    { attack: 'a refresh token presented as a bearer access token', source: 'RFC 6749 §1.5 (never sent to resource servers), RFC 6750 §3.1', attempt: async () => onProtected(other.refresh_token), expected: [401, 'invalid_token'] },
    { attack: 'a refresh token of the right shape, all random', source: 'RFC 6749 §10.10, RFC 6819 §5.1.4.2.2 (unguessable)', attempt: async () => oauth(await refresh(`${random(16)}.${random(16)}.${random(32)}`)), expected: [400, 'invalid_grant'] },
    { attack: 'the user\'s real store key, a guessed family', source: 'RFC 6749 §10.10', attempt: async () => oauth(await refresh(`${guessed.refresh_token.split('.')[0] as string}.${random(16)}.${random(32)}`)), expected: [400, 'invalid_grant'] },
    { attack: 'a real family, a forged secret', source: 'RFC 6749 §10.10, RFC 9700 §4.14.2', attempt: async () => oauth(await refresh(`${userKey}.${familyId}.${random(32)}`)), expected: [400, 'invalid_grant'] }
  ]
  for (const { attack, source, attempt, expected } of rows) t.same(await attempt(), expected, `${attack} [${source}]`)

  // What the attacks left behind: a wrong client spends nothing, a guess hurts no family, and a
  // forged secret under a real family's name is unknown, and ends nothing.
  t.equal((await refresh(stolen.refresh_token)).statusCode, 200, 'the right client still refreshes the token another client tried')
  t.equal((await refresh(guessed.refresh_token)).statusCode, 200, 'guessing hurt no family')
  t.equal((await refresh(forged.refresh_token)).statusCode, 200, 'a forged secret under a real family\'s name is unknown: the family lives on (RFC 9700 §4.14.2)')
  t.same(await onProtected(other.access_token), [200, undefined], 'the access token presented as a refresh token still works')
})

t.test('a refresh token made up from what an access token shows (its sub and sid)', async (t) => {
  // An access token's payload is readable by whoever sees it: a resource server, a log, a page's
  // script. Its `sub` gives the user's store key (a hash of it), its `sid` names its family. A
  // refresh token built from the two must not reach the family: taken for reuse, it would end the
  // user's session and deny its access tokens (RFC 9700 §4.14.2 revokes for a token that was
  // issued and replaced, not for one nobody issued).
  const app = await buildApp(t, { plugin: { refreshTokens: true, revocableAccessTokens: true, rateLimit: false, loginThrottle: false } })
  const pair = (await tokenRequest(app, GOOD)).json() as { access_token: string, refresh_token: string }
  const claims = JSON.parse(Buffer.from(pair.access_token.split('.')[1] as string, 'base64url').toString()) as { sub: string, sid: string }
  t.type(claims.sid, 'string', 'the access token names its family')
  const userKey = createHash('sha256').update(claims.sub).digest('base64url').slice(0, 22)
  t.equal(pair.refresh_token.split('.')[0], userKey, 'the refresh token\'s first part is computable from sub')
  const madeUp = `${userKey}.${claims.sid}.${randomBytes(32).toString('base64url')}`

  const refreshed = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: madeUp })
  t.same([refreshed.statusCode, refreshed.json().error], [400, 'invalid_grant'])
  t.equal((await tokenRequest(app, { token: madeUp }, {}, '/revoke')).statusCode, 200, 'RFC 7009 §2.2: an unknown token is answered 200')
  const protectedRoute = await app.inject({ url: '/protected', headers: bearer(pair.access_token) })
  t.equal(protectedRoute.statusCode, 200, 'the access token was not denied')
  const next = await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: pair.refresh_token })
  t.equal(next.statusCode, 200, 'the session goes on: its refresh token still works')
  t.equal(JSON.parse(Buffer.from(next.json().access_token.split('.')[1], 'base64url').toString()).sid, claims.sid, 'in the same family')
})

t.test('a stolen refresh token replayed inside the retry grace (RFC 9700 §4.14.2)', async (t) => {
  // The thief holds the token the client just refreshed away. Inside the grace its replay looks
  // like the client's own retry: it gets a pair, and the client's pair stops refreshing. The
  // client's next refresh is then reuse, which ends the family and every access token from it,
  // the thief's included. From another client, the replay is reuse at once.
  const app = await buildApp(t, {
    plugin: { refreshTokens: true, revocableAccessTokens: true, rateLimit: false, clients: [{ id: 'web' }, { id: 'mobile' }] }
  })
  const web = { client_id: 'web' }
  const refresh = (token: string, client = web) => tokenRequest(app, { grant_type: 'refresh_token', refresh_token: token, ...client })
  const onProtected = async (token: string) => (await app.inject({ url: '/protected', headers: bearer(token) })).statusCode

  const login = (await tokenRequest(app, { ...GOOD, ...web })).json()
  const stolen = login.refresh_token as string
  const client = (await refresh(stolen)).json()
  const thief = await refresh(stolen)
  t.equal(thief.statusCode, 200, 'inside the grace the thief is taken for the client retrying')
  t.equal(await onProtected(thief.json().access_token), 200)
  t.same([(await refresh(client.refresh_token)).statusCode, (await refresh(client.refresh_token)).json().error], [400, 'invalid_grant'],
    'the client\'s next refresh fails: reuse')
  t.equal(await onProtected(thief.json().access_token), 401, 'the thief\'s access token dies with the family')
  t.equal((await refresh(thief.json().refresh_token)).json().error, 'invalid_grant', 'and its refresh token')
  t.equal(await onProtected(client.access_token), 401, 'the client logs in again')

  const other = (await tokenRequest(app, { ...GOOD, ...web })).json()
  const next = (await refresh(other.refresh_token)).json()
  t.equal((await refresh(other.refresh_token, { client_id: 'mobile' })).json().error, 'invalid_grant', 'a replay from another client')
  t.equal((await refresh(next.refresh_token)).json().error, 'invalid_grant', 'is reuse at once: the family ended')
  t.equal(await onProtected(next.access_token), 401)
})

t.test('browser sessions: CSRF on the cookie, and device cookies (OWASP CSRF and authentication cheat sheets)', async (t) => {
  // Details in browser-sessions.test.ts and device-cookies.test.ts; here one row each.
  const app = await buildApp(t, {
    plugin: { refreshTokens: true, rateLimit: false, browserSessions: true, loginThrottle: { perUsername: { freeAttempts: 2, maxDelay: 3_600_000 } } }
  })
  const page = { 'x-token-delivery': 'cookie', origin: 'http://localhost:80' }
  const post = (fields: Record<string, string>, headers: Record<string, string>, remoteAddress = '198.51.100.1', url = '/token') =>
    app.inject({ method: 'POST', url, remoteAddress, headers: { ...FORM, ...headers }, payload: form(fields) })
  const cookieOf = (res: LightMyRequestResponse, name: string): string => {
    const lines = res.headers['set-cookie'] as string[]
    return (lines.find((line) => line.startsWith(`${name}=`)) as string).split(';')[0] as string
  }
  const login = await post(GOOD, page)
  const session = cookieOf(login, '__Host-refresh-token')
  const device = cookieOf(login, '__Host-device')
  const refresh = { grant_type: 'refresh_token' }
  const rows: Array<[string, Record<string, string>, string, number]> = [
    ['a cross-site form posts a refresh with the victim\'s cookie (no custom header)', { cookie: session, origin: 'https://evil.example' }, '/token', 403],
    ['a cross-site form logs the victim out', { cookie: session, origin: 'https://evil.example' }, '/revoke', 403],
    ['a cross-origin fetch sets the header (after a preflight the host would refuse)', { ...page, cookie: session, origin: 'https://evil.example' }, '/token', 403],
    ['no Origin, Sec-Fetch-Site: cross-site', { 'x-token-delivery': 'cookie', 'sec-fetch-site': 'cross-site', cookie: session }, '/token', 403]
  ]
  for (const [attack, headers, url, status] of rows) t.equal((await post(refresh, headers, '198.51.100.1', url)).statusCode, status, attack)

  for (let i = 0; i < 2; i++) await post({ ...GOOD, password: 'guess' }, {}, `203.0.113.${i}`)
  t.equal((await post(GOOD, { ...page, cookie: device.replace(/.$/, (c) => c === 'A' ? 'B' : 'A') }, '192.0.2.1')).statusCode, 429,
    'a forged device cookie does not pass the per-username backoff')
  t.equal((await post(GOOD, { ...page, cookie: device }, '192.0.2.2')).statusCode, 200, 'the real one does')
})
