import type { FastifyError, FastifyInstance } from 'fastify'
import formbody from '@fastify/formbody'
import rateLimit from '@fastify/rate-limit'
import { methodNotAllowed, oauthError, oauthErrorResponse, toOAuthError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import { maskRequestLogs } from '../logging/request-log.js'
import type { WindowLimit } from '../options/types.js'
import { documentRoute } from '../openapi.js'
import type { AuthStore } from '../stores/types.js'
import { sourceOf } from '../throttle/keys.js'
import { refuseEncodedBodies } from './body-encoding.js'
import { rateLimitStore } from './rate-limit-store.js'

/** What the OAuth2 endpoints' shared scope is set up with. */
export interface EndpointScopeDeps {
  /** Largest request body in bytes. */
  bodyLimit: number
  /** The per-IP limit, or `false` for none. */
  rateLimit: Required<WindowLimit> | false
  /** Where the per-IP limit counts. */
  store: AuthStore
  /** The realm of the `WWW-Authenticate: Basic` challenge after a failed client authentication. */
  realm: string
  emit: EmitEvent
}

/**
 * Sets up the encapsulated scope the OAuth2 endpoints (token, revocation) live in: only form
 * bodies (uncompressed, in UTF-8), the per-IP limit before anything else, RFC 6749 §5.2 answers
 * for every error, and credentials masked in request logs. Nothing here reaches the host's other routes.
 */
export async function setUpEndpointScope (fastify: FastifyInstance, { bodyLimit, rateLimit: limit, store, realm, emit }: EndpointScopeDeps): Promise<void> {
  // Only forms reach these endpoints: JSON, text and multipart bodies get 415 from Fastify,
  // which the error handler below answers as invalid_request.
  fastify.removeAllContentTypeParsers()
  await fastify.register(formbody, { bodyLimit })

  if (limit !== false) {
    // Counted in onRequest: before the body is read, and long before any hashing.
    await fastify.register(rateLimit, {
      max: limit.max,
      timeWindow: limit.timeWindow,
      hook: 'onRequest',
      // Keyed as the login throttle keys: an IPv6 client by its /64, and a forwarded address
      // that is no IP address (a client writing its own X-Forwarded-For past a broken proxy)
      // by the socket's, so no client picks its key or makes it 15 KB long.
      keyGenerator: sourceOf,
      // Counted in the plugin's store: shared by every instance when that store is Redis.
      store: rateLimitStore(store),
      errorResponseBuilder: (request, context) => {
        emit(request, { type: 'login.throttled', reason: 'per_ip' })
        return oauthError('too_many_requests', 'Too many token requests; retry later', context.ttl / 1000)
      }
    })
  }

  // A compressed body, or a form in a charset other than UTF-8, would be parsed as if it were
  // plain UTF-8 form bytes: refused before it is read. preParsing runs after every onRequest hook,
  // the limiter's included (a route-level one, which runs after any hook added here), so the
  // per-IP limit has counted the request first.
  fastify.addHook('preParsing', refuseEncodedBodies)

  fastify.setErrorHandler(function oauthErrorHandler (thrown: FastifyError, request, reply) {
    const { error, origin } = toOAuthError(thrown)
    if (origin === 'store') request.log.error({ err: thrown }, 'the store is unavailable')
    else if (origin === 'full') emit(request, { type: 'store.full', reason: (thrown as { table?: string }).table })
    else if (origin === 'fault') request.log.error({ err: thrown }, 'token endpoint failed')
    const { statusCode, headers, body } = oauthErrorResponse(error, realm)
    return reply.code(statusCode).headers(headers).send(body)
  })

  maskRequestLogs(fastify)
}

/**
 * RFC 6749 §3.2 and RFC 7009 §2.1: these endpoints take POST only; other methods get 405.
 *
 * OPTIONS too: without CORS set up by the host, the endpoint supports POST alone, so `Allow: POST`
 * stays true (RFC 9110 §15.5.6) and a browser's preflight from another origin fails visibly
 * instead of meeting a bare 404. A host that registers @fastify/cors gets its preflights answered
 * by cors's onRequest hook, which runs before this route (docs/browsers-and-cors.md).
 */
export function refuseOtherMethods (fastify: FastifyInstance, path: string, endpoint: string): void {
  fastify.route({
    // Every method Fastify routes (TRACE and QUERY too, and any the host added before this
    // plugin); HEAD is GET's.
    method: fastify.supportedMethods.filter((method) => method !== 'POST' && method !== 'HEAD'),
    url: path,
    config: documentRoute(null),
    handler: async () => { throw methodNotAllowed(endpoint) }
  })
}
