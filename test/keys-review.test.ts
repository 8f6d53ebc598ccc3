import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { JsonWebKey } from 'node:crypto'
import tokenAuth, { type FastifyTokenAuthOptions } from '../lib/index.js'
import { bearer, validClaims, type LooseOptions } from './helper.js'
import { countingServer, keyPair, signJws, sleep } from './key-fixtures.js'

/*
 * Verify-only mode against a JWKS endpoint that misbehaves while it answers: a published key
 * that cannot be read, and a body that never ends. Real servers on 127.0.0.1.
 */

t.setTimeout(120_000)

const ISSUER = 'https://issuer.example'
const AUDIENCE = 'https://api.example'

async function resourceApp (t: Test, options: LooseOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, { issuer: ISSUER, audience: AUDIENCE, ...options } as FastifyTokenAuthOptions)
  app.get('/protected', { preHandler: app.authenticate }, async (request) => ({ sub: request.user.sub }))
  await app.ready()
  return app
}

function publicJwk (kid: string): JsonWebKey {
  return { ...keyPair('ES256', kid).publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }
}

function token (kid: string): string {
  return signJws({ alg: 'ES256', typ: 'at+jwt', kid }, validClaims({ iss: ISSUER, aud: AUDIENCE }), 'ES256', keyPair('ES256', kid).privateKey)
}

function get (app: FastifyInstance, bearerToken: string) {
  return app.inject({ url: '/protected', headers: bearer(bearerToken) })
}

t.test('a published key that cannot be read verifies nothing (401), and tokens naming it cannot hold off the next fetch', async (t) => {
  // An EC key whose x lost its leading bytes, as some JWKS generators print them: WebCrypto cannot
  // import it. Anyone can read its kid in the set and put it in a token, signed or not.
  const broken = { ...publicJwk('broken'), x: 'AA' }
  let hits = 0
  const jwks = await countingServer(t, (_request, response) => {
    hits++
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ keys: [publicJwk('good'), broken] }))
  })
  const cacheMaxAge = 400
  const resource = await resourceApp(t, { jwksUrl: `${jwks.url}/jwks.json`, jwksClient: { cacheMaxAge, cooldown: 60_000 } })
  t.equal((await get(resource, token('good'))).statusCode, 200, 'control')

  const refused = await get(resource, token('broken'))
  t.equal(refused.statusCode, 401, 'the token is refused as one of an unusable key, not answered 503')
  t.equal(refused.json().code, 'FST_TOKEN_AUTH_INVALID_TOKEN')
  t.match(refused.headers['www-authenticate'], /error="invalid_token"/)

  // Past cacheMaxAge the set must be fetched again, whatever tokens naming the broken key came in
  // meanwhile: they are not failed fetches, and must not start the cooldown that follows one.
  const until = Date.now() + cacheMaxAge + 50
  while (Date.now() < until) {
    await get(resource, token('broken'))
    await sleep(50)
  }
  const after = await get(resource, token('good'))
  t.equal(after.statusCode, 200, 'the set is fetched again and good tokens still verify')
  t.equal(hits, 2, 'by one fetch')
})

t.test('a JWKS body that never ends: 503 after reading a bounded amount, not everything the timeout lets through', async (t) => {
  let sent = 0
  let closed = 0
  const chunk = Buffer.alloc(64 * 1024, 0x20)
  const endless = await countingServer(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' })
    response.write('{"keys":[')
    response.on('close', () => { closed = Date.now() })
    const pump = (): void => {
      while (!response.destroyed) {
        sent += chunk.length
        if (!response.write(chunk)) {
          response.once('drain', pump)
          return
        }
      }
    }
    pump()
  })
  const resource = await resourceApp(t, { jwksUrl: `${endless.url}/jwks.json`, jwksClient: { timeout: 3000 } })
  const started = Date.now()
  const res = await get(resource, token('good'))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_TOKEN_AUTH_KEYS_UNAVAILABLE')
  t.ok(Date.now() - started < 2000, `given up before the timeout (${Date.now() - started} ms)`)
  await sleep(100)
  t.ok(closed > 0, 'the connection was closed')
  t.ok(sent < 16 * 1024 * 1024, `the body was not read on: ${(sent / 1024 / 1024).toFixed(1)} MB sent`)
})

t.test('a JWKS that declares a body too large is refused without reading it; a large but sane set verifies', async (t) => {
  const declared = await countingServer(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': String(64 * 1024 * 1024) })
    response.write('{"keys":[')
  })
  const resource = await resourceApp(t, { jwksUrl: `${declared.url}/jwks.json`, jwksClient: { timeout: 3000 } })
  const started = Date.now()
  t.equal((await get(resource, token('good'))).statusCode, 503)
  t.ok(Date.now() - started < 2000, 'at once, not at the timeout')

  // Two hundred keys, about 40 KB: far more than any issuer publishes, and fine.
  const many = Array.from({ length: 199 }, (_, i) => ({ ...publicJwk('good'), kid: `filler-${i}` }))
  const big = await countingServer(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ keys: [...many, publicJwk('good')] }))
  })
  const ok = await resourceApp(t, { jwksUrl: `${big.url}/jwks.json` })
  t.equal((await get(ok, token('good'))).statusCode, 200)
})
