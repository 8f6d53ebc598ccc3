import type { FastifyInstance } from 'fastify'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import { createVerifier } from 'fast-jwt'
import { randomUUID, type JsonWebKey } from 'node:crypto'
import type { KeySource, SigningAlgorithm } from '../options/keys.js'
import { createRemoteKeySet, type KeyLookupError } from './remote-keys.js'
import { InvalidOptionError } from '../errors.js'
import { StacklessError } from '../util/stackless-error.js'
import type { AccessTokenClaims } from './claims.js'

/** What signing and verifying access tokens depends on. */
export interface TokenServiceDeps {
  keySource: KeySource
  /** Seconds. */
  accessTokenTtl: number
  issuer: string | undefined
  audience: string | string[] | undefined
  /** Verify-only mode: any `aud` is accepted, but a token must still name one. */
  acceptAnyAudience: boolean
  /** Seconds of clock skew allowed for `exp`, `nbf` and `iat`. */
  clockTolerance: number
}

/**
 * Why a token was rejected; a fixed word, safe to log. `unknown_key`: its `kid` names no key we
 * have; `keys_unavailable`: the JWKS could not be fetched, so nothing could be checked.
 */
export type RejectReason = 'expired' | 'invalid' | 'unknown_key' | 'keys_unavailable'

const MESSAGES: Record<RejectReason, string> = {
  expired: 'The access token expired',
  invalid: 'The access token is invalid',
  unknown_key: 'The access token is signed with an unknown key',
  keys_unavailable: 'The keys to check the access token are unavailable; retry later'
}

/**
 * Thrown by `verify` for any token that must not be accepted: an answer, so without a stack (a
 * forged-token flood raises one per request).
 */
export class TokenRejectedError extends StacklessError {
  override name = 'TokenRejectedError'
  readonly reason: RejectReason
  /** With `keys_unavailable`: seconds until it is worth retrying. */
  readonly retryAfter: number | undefined
  constructor (reason: RejectReason, retryAfter?: number) {
    super(MESSAGES[reason])
    this.reason = reason
    this.retryAfter = retryAfter
  }
}

export interface SignedToken {
  token: string
  expiresIn: number
}

export interface TokenService {
  /** `extra` claims never replace the registered ones; a host function that tries is a bug, refused here. */
  sign: (claims: { sub: string, scope: readonly string[], clientId: string, familyId?: string, epoch?: number, extra?: object }) => SignedToken
  /**
   * Verifies a compact JWS and gives its claims; throws, or rejects, with `TokenRejectedError`
   * for anything else. Synchronous unless a key has to be fetched first (verify-only mode).
   */
  verify: (token: string) => AccessTokenClaims | Promise<AccessTokenClaims>
  /** The public keys to publish (RFC 7517 §5): every asymmetric key listed, never an HMAC secret. */
  publicJwks: readonly JsonWebKey[]
}

// RFC 9068 §2.1: access tokens are typed `at+jwt`; fast-jwt compares it case-insensitively
// and without an `application/` prefix, as RFC 7515 §4.1.9 asks.
const ACCESS_TOKEN_TYP = 'at+jwt'
const NAMESPACE = 'fastifyTokenAuth'
// RFC 7519 §4.1 and RFC 9068 §2.2: set by the plugin only.
// `sid` and `rev_epoch` are the plugin's own, read by revocation.
const REGISTERED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'sid', 'rev_epoch'])

/** fast-jwt's verification options for one key: its one algorithm and our claim rules. */
function verifyOptions (options: TokenServiceDeps, alg: SigningAlgorithm) {
  return {
    // RFC 8725 §3.1: only the one algorithm this key is for; `none` never.
    algorithms: [alg],
    checkTyp: ACCESS_TOKEN_TYP,
    clockTolerance: options.clockTolerance * 1000,
    // RFC 9068 §2.2 claims; iss and aud matched exactly when configured (RFC 8725 §3.8–3.9).
    requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id',
      ...(options.issuer === undefined ? [] : ['iss']),
      ...(options.audience === undefined && !options.acceptAnyAudience ? [] : ['aud'])],
    ...(options.issuer === undefined ? {} : { allowedIss: options.issuer }),
    ...(options.audience === undefined ? {} : { allowedAud: options.audience })
  }
}

function isAudience (aud: unknown): boolean {
  return typeof aud === 'string' || (Array.isArray(aud) && aud.length > 0 && aud.every((one) => typeof one === 'string'))
}

/** The JOSE header of a compact JWS, read only to pick a key; the verifier checks it all again. */
function headerOf (token: string): { kid?: unknown, alg?: unknown } | undefined {
  try {
    const header: unknown = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8'))
    return typeof header === 'object' && header !== null ? header : undefined
  } catch {
    return undefined
  }
}

type Verify = (token: string) => unknown

/**
 * Signs and verifies access tokens. Keys listed in the options (`secret` or `keys`) each get an
 * `@fastify/jwt` of their own, registered in a scope of ours and under a namespace, so that a
 * host which registered `@fastify/jwt` itself keeps its `fastify.jwt`, its `request.jwtVerify`
 * and its secret (its `fastify.jwt` object only gains `fastifyTokenAuth` keys: that is how
 * @fastify/jwt namespaces work). Keys fetched from a JWKS arrive after registration, so each gets a
 * fast-jwt verifier, the one @fastify/jwt would build, when it is first seen.
 */
export async function createTokenService (fastify: FastifyInstance, options: TokenServiceDeps): Promise<TokenService> {
  const toleranceSeconds = options.clockTolerance

  /** Runs a verifier, then checks what fast-jwt leaves unchecked. */
  function checked (verify: Verify, token: string): AccessTokenClaims {
    let claims: unknown
    // A refused token is an answer, not a fault: fast-jwt's error needs no stack trace, and under
    // a flood of forged tokens capturing one each time is a real share of their cost. The verifier
    // is synchronous, so the setting is back before anything else runs.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      claims = verify(token)
    } catch (error) {
      throw new TokenRejectedError((error as { code?: string }).code === 'FAST_JWT_EXPIRED' ? 'expired' : 'invalid')
    } finally {
      Error.stackTraceLimit = stackTraceLimit
    }
    // What fast-jwt leaves unchecked (RFC 9068 §4, RFC 7519 §4.1): a claims set that is a
    // JSON object, non-empty string `sub` and `jti`, a numeric `iat` that is not in the future,
    // string `client_id` and `scope`, and a well-formed `aud`. And RFC 7515 §4.1.11 / §5.2 step 5: a recipient must
    // understand every `crit` value and this one understands no extension, so a `crit` member of
    // any value makes the token invalid; fast-jwt only checks a truthy one (`"crit": null`,
    // `false`, `0` or `""` got through).
    const c = claims as Partial<AccessTokenClaims> | null
    if (Object.hasOwn(headerOf(token) as object, 'crit') || typeof c !== 'object' || c === null || Array.isArray(c) ||
      typeof c.sub !== 'string' || c.sub.length === 0 ||
      typeof c.iat !== 'number' || c.iat > Date.now() / 1000 + toleranceSeconds ||
      typeof c.jti !== 'string' || c.jti.length === 0 ||
      typeof c.client_id !== 'string' ||
      (c.scope !== undefined && typeof c.scope !== 'string') ||
      // RFC 7519 §4.1.3: one string or an array of them, whether or not a particular one is wanted.
      (c.aud !== undefined && !isAudience(c.aud))) {
      throw new TokenRejectedError('invalid')
    }
    return c as AccessTokenClaims
  }

  const source = options.keySource
  if (source.kind === 'remote') {
    const remote = await createRemoteKeySet(source, (key) => createVerifier({ key: key.verifyingKey, ...verifyOptions(options, key.alg) }) as Verify)
    return {
      /* c8 ignore next 3 -- unreachable: verify-only mode registers no token endpoint */
      sign () {
        throw new Error('fastify-token-auth: verify-only mode cannot sign tokens')
      },
      async verify (token) {
        const header = headerOf(token)
        if (header === undefined) throw new TokenRejectedError('invalid')
        let verifier: Verify
        try {
          verifier = await remote.verifierFor(header)
        } catch (error) {
          const lookup = error as KeyLookupError
          throw lookup.unavailable ? new TokenRejectedError('keys_unavailable', lookup.retryAfter) : new TokenRejectedError('unknown_key')
        }
        return checked(verifier, token)
      },
      publicJwks: []
    }
  }

  const keys = source.keys
  const jwts: JWT[] = []
  await fastify.register(async function accessTokenSigner (scope) {
    for (const [index, key] of keys.entries()) {
      // Without a namespace, @fastify/jwt decorates `jwt` and `request.user` in this scope,
      // which Fastify refuses when the host registered @fastify/jwt before us.
      const namespace = index === 0 ? NAMESPACE : `${NAMESPACE}${index}`
      await scope.register(fastifyJwt, {
        namespace,
        // A public key alone verifies; @fastify/jwt then builds no signer for it.
        secret: key.signingKey === undefined ? { public: key.verifyingKey } : { private: key.signingKey, public: key.verifyingKey },
        sign: {
          algorithm: key.alg,
          header: { alg: key.alg, typ: ACCESS_TOKEN_TYP, ...(key.kid === undefined ? {} : { kid: key.kid }) },
          // @fastify/jwt reads a bare number as seconds and fast-jwt as milliseconds; a string is unambiguous.
          expiresIn: `${options.accessTokenTtl}s`,
          ...(options.issuer === undefined ? {} : { iss: options.issuer }),
          ...(options.audience === undefined ? {} : { aud: options.audience })
        },
        verify: verifyOptions(options, key.alg)
      })
      jwts.push((scope.jwt as unknown as Record<string, JWT>)[namespace] as JWT)
    }
  })
  const signer = jwts[0] as JWT
  // The `secret` shortcut's one key has no kid: its tokens carry none, and any token goes to it.
  const kidless = keys[0]?.kid === undefined
  const byKid = new Map<unknown, JWT>(keys.map((key, index) => [key.kid, jwts[index] as JWT]))

  return {
    sign ({ sub, scope, clientId, familyId, epoch, extra = {} }) {
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new InvalidOptionError('claims', 'must return an object')
      const reserved = Object.keys(extra).find((name) => REGISTERED_CLAIMS.has(name))
      if (reserved !== undefined) throw new InvalidOptionError('claims', `returned the registered claim "${reserved}", which the plugin sets`)
      const payload: Record<string, unknown> = { ...extra, sub, jti: randomUUID(), client_id: clientId }
      if (scope.length > 0) payload.scope = scope.join(' ')
      if (familyId !== undefined) payload.sid = familyId
      if (epoch !== undefined) payload.rev_epoch = epoch
      return { token: signer.sign(payload), expiresIn: options.accessTokenTtl }
    },

    verify (token) {
      let jwt = signer
      if (!kidless) {
        // RFC 8725 §3.10: the kid only selects among our own keys; jku, x5u and jwk are never read.
        const header = headerOf(token)
        if (header === undefined) throw new TokenRejectedError('invalid')
        const named = byKid.get(header.kid)
        if (named === undefined) throw new TokenRejectedError('unknown_key')
        jwt = named
      }
      return checked((t) => jwt.verify(t), token)
    },

    publicJwks: keys.flatMap((key) => key.publicJwk === undefined ? [] : [key.publicJwk])
  }
}
