import type { FastifyInstance } from 'fastify'
import type { JsonWebKey } from 'node:crypto'

/** What the JWKS endpoint serves, and where. */
export interface JwksEndpointDeps {
  path: string
  publicJwks: readonly JsonWebKey[]
}

// Long enough that verifiers do not fetch on every token, short enough that a key added for
// rotation reaches them within minutes (docs/keys-and-rotation.md).
const CACHE_CONTROL = 'public, max-age=300'

/**
 * Serves the public keys as a JWK Set (RFC 7517 §5), for services that verify our tokens. The
 * body is built once: the keys do not change while the app runs.
 */
export function jwksEndpoint (fastify: FastifyInstance, { path, publicJwks }: JwksEndpointDeps): void {
  const body = JSON.stringify({ keys: publicJwks })
  fastify.get(path, async (_request, reply) => {
    // RFC 7517 §8.5.
    reply.headers({ 'content-type': 'application/jwk-set+json', 'cache-control': CACHE_CONTROL })
    return body
  })
}
