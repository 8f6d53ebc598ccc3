import { createHmac, createSign, generateKeyPairSync, randomBytes, sign as cryptoSign, constants, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { KeyOption, SigningAlgorithm } from '../lib/index.js'

/*
 * Keys and hand-made tokens for the key, JWKS and verify-only tests. Not a test file itself.
 */

export interface KeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

const pairs = new Map<string, KeyPair>()

/** A key pair for an asymmetric algorithm; `name` gives several distinct pairs of one kind. */
export function keyPair (alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA', name = 'a'): KeyPair {
  const id = `${alg}/${name}`
  let pair = pairs.get(id)
  if (pair === undefined) {
    pair = alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 })
    pairs.set(id, pair)
  }
  return pair
}

const HMAC_BYTES = { HS256: 32, HS384: 48, HS512: 64 }

/** A random secret of the right length for an HS algorithm. */
export function hmacSecret (alg: 'HS256' | 'HS384' | 'HS512'): Buffer {
  return randomBytes(HMAC_BYTES[alg])
}

/** A signing key entry for `keys`, as a private PEM (asymmetric) or a random secret (HS*). */
export function signingKey (alg: SigningAlgorithm, kid: string = `kid-${alg}`): KeyOption {
  if (alg.startsWith('HS')) return { kid, alg, key: hmacSecret(alg as 'HS256') }
  return { kid, alg, key: keyPair(alg as 'ES256', kid).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

export const ALL: readonly SigningAlgorithm[] = ['HS256', 'HS384', 'HS512', 'RS256', 'PS256', 'ES256', 'EdDSA']

const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/**
 * Signs a JWS by hand with any algorithm and key, so tests can make tokens the plugin would
 * never issue (another key, a switched `alg`, a public key used as an HMAC secret).
 */
export function signJws (header: Record<string, unknown>, payload: unknown, alg: string, key: KeyObject | Buffer | string): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  const data = Buffer.from(input)
  let signature: Buffer
  if (alg.startsWith('HS')) {
    signature = createHmac(`sha${alg.slice(2)}`, key as Buffer).update(data).digest()
  } else if (alg === 'EdDSA') {
    signature = cryptoSign(null, data, key as KeyObject)
  } else if (alg.startsWith('ES')) {
    signature = cryptoSign('sha256', data, { key: key as KeyObject, dsaEncoding: 'ieee-p1363' })
  } else {
    const pss = alg.startsWith('PS')
    signature = createSign(`sha${alg.slice(2)}`).update(data).sign({
      key: key as KeyObject,
      ...(pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : {})
    })
  }
  return `${input}.${signature.toString('base64url')}`
}

/** A plain HTTP server on 127.0.0.1 that counts its requests; `handle` answers them. */
export interface CountingServer {
  url: string
  hits: () => number
  server: Server
}

export async function countingServer (
  t: { teardown: (fn: () => unknown) => void },
  handle: (request: IncomingMessage, response: ServerResponse) => void
): Promise<CountingServer> {
  let hits = 0
  const server = createServer((request, response) => {
    hits++
    handle(request, response)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, hits: () => hits, server }
}

/** Waits `ms` milliseconds. */
export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
