import t from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { buildServer, start } from '../examples/server.js'
import tokenAuth from '../lib/index.js'
import { runCli } from '../lib/cli/cli.js'
import { FORM, form } from './helper.js'

/*
 * The example server with JWT_KEYS_FILE: a JWK Set of private keys (as `generate-key` prints
 * them), the first one signing, and the public keys served at /.well-known/jwks.json.
 */

const QUIET = { LOG_LEVEL: 'silent' }

async function generate (alg: string, format: 'jwk' | 'jwks'): Promise<string> {
  let out = ''
  await runCli(['generate-key', '--alg', alg, '--format', format], {
    stdin: Readable.from([]),
    stdout: { write: (text: string) => { out += text } },
    stderr: { write: () => {} }
  })
  return out
}

async function tokenFor (app: Awaited<ReturnType<typeof buildServer>>): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload: form({ grant_type: 'password', username: 'user1', password: 'password1' }) })
  return res.json().access_token
}

t.test('JWT_KEYS_FILE: the first key signs, every key is published, jose verifies the tokens', async (t) => {
  const first = JSON.parse(await generate('ES256', 'jwk'))
  const second = JSON.parse(await generate('EdDSA', 'jwk'))
  const dir = t.testdir({ 'keys.json': JSON.stringify({ keys: [first, second] }) })
  const app = await buildServer({ ...QUIET, JWT_KEYS_FILE: `${dir}/keys.json`, JWT_SECRET: 'example-test-secret-2f9c4e1a7b3d8f0e6c5a' })
  t.teardown(() => app.close())

  const token = await tokenFor(app)
  const jwksRes = await app.inject('/.well-known/jwks.json')
  t.equal(jwksRes.statusCode, 200)
  t.equal(jwksRes.headers['cache-control'], 'public, max-age=300')
  const jwks = jwksRes.json()
  t.same(jwks.keys.map((k: { kid: string }) => k.kid), [first.kid, second.kid])
  t.notMatch(jwksRes.body, /"d"/, 'no private part is served')
  const { protectedHeader, payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer: 'http://127.0.0.1:3000', audience: 'fastify-token-auth-example', typ: 'at+jwt', algorithms: ['ES256']
  })
  t.equal(protectedHeader.kid, first.kid, 'signed by the first key, not by JWT_SECRET')
  t.equal(payload.sub, 'user1')
  const hello = await app.inject({ url: '/protected', headers: { authorization: `Bearer ${token}` } })
  t.same(hello.json(), { message: 'Hello, authenticated user!' })
})

t.test('`generate-key --format jwks` output is a JWT_KEYS_FILE as it is; a verify-only app trusts the served JWKS', async (t) => {
  const dir = t.testdir({ 'keys.json': await generate('RS256', 'jwks') })
  const issuer = await start({ ...QUIET, JWT_KEYS_FILE: `${dir}/keys.json`, HOST: '127.0.0.1', PORT: '0' })
  t.teardown(() => issuer.close())
  const { port } = issuer.server.address() as AddressInfo

  const resource = Fastify()
  t.teardown(() => resource.close())
  await resource.register(tokenAuth, { jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`, issuer: 'http://127.0.0.1:3000', audience: 'fastify-token-auth-example' })
  resource.get('/me', { preHandler: resource.authenticate }, async (request) => ({ sub: request.user.sub }))
  const res = await resource.inject({ url: '/me', headers: { authorization: `Bearer ${await tokenFor(issuer)}` } })
  t.same(res.json(), { sub: 'user1' })
})

t.test('without JWT_KEYS_FILE there is no JWKS (the HS256 secret is never published)', async (t) => {
  const app = await buildServer({ ...QUIET, JWT_SECRET: 'example-test-secret-2f9c4e1a7b3d8f0e6c5a' })
  t.teardown(() => app.close())
  t.equal((await app.inject('/.well-known/jwks.json')).statusCode, 404)
})

t.test('a JWT_KEYS_FILE that is missing, not JSON, not a JWK Set, or holds a bad key stops start-up', async (t) => {
  const noAlg = JSON.parse(await generate('ES256', 'jwk'))
  delete noAlg.alg
  const dir = t.testdir({
    'garbage.json': 'not json',
    'empty.json': '{"keys":[]}',
    'null.json': 'null',
    'object.json': '{}',
    'no-alg.json': JSON.stringify({ keys: [noAlg] })
  })
  await t.rejects(buildServer({ ...QUIET, JWT_KEYS_FILE: `${dir}/missing.json` }), { message: /JWT_KEYS_FILE/ })
  await t.rejects(buildServer({ ...QUIET, JWT_KEYS_FILE: `${dir}/garbage.json` }), { message: /JWT_KEYS_FILE/ })
  await t.rejects(buildServer({ ...QUIET, JWT_KEYS_FILE: `${dir}/empty.json` }), { message: /JWT_KEYS_FILE/ })
  await t.rejects(buildServer({ ...QUIET, JWT_KEYS_FILE: `${dir}/null.json` }), { message: /JWT_KEYS_FILE/ })
  await t.rejects(buildServer({ ...QUIET, JWT_KEYS_FILE: `${dir}/no-alg.json` }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION', message: /keys\[0\]/ })
  await t.rejects(buildServer({ ...QUIET, JWT_KEYS_FILE: `${dir}/object.json` }), { message: /JWT_KEYS_FILE/ })
})
