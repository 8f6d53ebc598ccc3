import type { FastifyInstance } from 'fastify'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import { randomUUID } from 'node:crypto'
import type { ResolvedOptions } from './options.js'
import { InvalidOptionError } from './errors.js'

/** The claims of an access token (RFC 9068 §2.2). */
export interface AccessTokenClaims {
  iss?: string
  sub: string
  aud?: string | string[]
  exp: number
  iat: number
  nbf?: number
  jti: string
  /** Space-delimited granted scopes (RFC 8693 §4.2), absent when none were granted. */
  scope?: string
  client_id: string
  [claim: string]: unknown
}

/** Why a token was rejected; a fixed word, safe to log. */
export type RejectReason = 'expired' | 'invalid'

/** Thrown by `verify` for any token that must not be accepted. */
export class TokenRejectedError extends Error {
  override name = 'TokenRejectedError'
  readonly reason: RejectReason
  constructor (reason: RejectReason) {
    super(reason === 'expired' ? 'The access token expired' : 'The access token is invalid')
    this.reason = reason
  }
}

export interface SignedToken {
  token: string
  expiresIn: number
}

export interface TokenService {
  /** `extra` claims never replace the registered ones; a host function that tries is a bug, refused here. */
  sign: (claims: { sub: string, scope: readonly string[], clientId: string, extra?: object }) => SignedToken
  /** Verifies a compact JWS and returns its claims; throws `TokenRejectedError` for anything else. */
  verify: (token: string) => AccessTokenClaims
}

// RFC 9068 §2.1: access tokens are typed `at+jwt`; fast-jwt compares it case-insensitively
// and without an `application/` prefix, as RFC 7515 §4.1.9 asks.
const ACCESS_TOKEN_TYP = 'at+jwt'
const ALGORITHM = 'HS256'
const NAMESPACE = 'fastifyJwtAuth'
// RFC 7519 §4.1 and RFC 9068 §2.2: set by the plugin only.
const REGISTERED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope'])

/**
 * Signs and verifies access tokens through `@fastify/jwt`, registered in a scope of its own and
 * under a namespace so that a host which registered `@fastify/jwt` itself keeps its
 * `fastify.jwt`, its `request.jwtVerify` and its secret (its `fastify.jwt` object only gains a
 * `fastifyJwtAuth` key: that is how @fastify/jwt namespaces work).
 */
export async function createTokenService (fastify: FastifyInstance, options: ResolvedOptions): Promise<TokenService> {
  let jwt: JWT | undefined
  await fastify.register(async function accessTokenSigner (scope) {
    await scope.register(fastifyJwt, {
      // Without a namespace, @fastify/jwt decorates `jwt` and `request.user` in this scope,
      // which Fastify refuses when the host registered @fastify/jwt before us.
      namespace: NAMESPACE,
      secret: options.secret,
      sign: {
        algorithm: ALGORITHM,
        header: { alg: ALGORITHM, typ: ACCESS_TOKEN_TYP },
        // @fastify/jwt reads a bare number as seconds and fast-jwt as milliseconds; a string is unambiguous.
        expiresIn: `${options.accessTokenTtl}s`,
        ...(options.issuer === undefined ? {} : { iss: options.issuer }),
        ...(options.audience === undefined ? {} : { aud: options.audience })
      },
      verify: {
        // RFC 8725 §3.1: only the one algorithm this key is for; `none` never.
        algorithms: [ALGORITHM],
        checkTyp: ACCESS_TOKEN_TYP,
        clockTolerance: options.clockTolerance * 1000,
        // RFC 9068 §2.2 claims; iss and aud matched exactly when configured (RFC 8725 §3.8–3.9).
        requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id',
          ...(options.issuer === undefined ? [] : ['iss']),
          ...(options.audience === undefined ? [] : ['aud'])],
        ...(options.issuer === undefined ? {} : { allowedIss: options.issuer }),
        ...(options.audience === undefined ? {} : { allowedAud: options.audience })
      }
    })
    jwt = (scope.jwt as unknown as Record<string, JWT>)[NAMESPACE]
  })
  const signer = jwt as JWT
  const toleranceSeconds = options.clockTolerance

  return {
    sign ({ sub, scope, clientId, extra = {} }) {
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new InvalidOptionError('claims', 'must return an object')
      const reserved = Object.keys(extra).find((name) => REGISTERED_CLAIMS.has(name))
      if (reserved !== undefined) throw new InvalidOptionError('claims', `returned the registered claim "${reserved}", which the plugin sets`)
      const payload: Record<string, unknown> = { ...extra, sub, jti: randomUUID(), client_id: clientId }
      if (scope.length > 0) payload.scope = scope.join(' ')
      return { token: signer.sign(payload), expiresIn: options.accessTokenTtl }
    },

    verify (token) {
      let claims: unknown
      try {
        claims = signer.verify(token)
      } catch (error) {
        throw new TokenRejectedError((error as { code?: string }).code === 'FAST_JWT_EXPIRED' ? 'expired' : 'invalid')
      }
      // What fast-jwt leaves unchecked (RFC 9068 §4, RFC 7519 §4.1): a claims set that is a
      // JSON object, non-empty string `sub` and `jti`, a numeric `iat` that is not in the future, and
      // string `client_id` and `scope`.
      const c = claims as Partial<AccessTokenClaims> | null
      if (typeof c !== 'object' || c === null || Array.isArray(c) ||
        typeof c.sub !== 'string' || c.sub.length === 0 ||
        typeof c.iat !== 'number' || c.iat > Date.now() / 1000 + toleranceSeconds ||
        typeof c.jti !== 'string' || c.jti.length === 0 ||
        typeof c.client_id !== 'string' ||
        (c.scope !== undefined && typeof c.scope !== 'string')) {
        throw new TokenRejectedError('invalid')
      }
      return c as AccessTokenClaims
    }
  }
}
