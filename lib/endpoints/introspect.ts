import type { FastifyInstance } from 'fastify'
import { oauthError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import type { ClientRecord, WindowLimit } from '../options/types.js'
import type { RouteDocConfig } from '../openapi.js'
import type { AuthStore } from '../stores/types.js'
import type { Introspect } from '../tokens/introspect.js'
import type { AuthenticateClient } from './client-auth.js'
import { refuseOtherMethods } from './endpoint-scope.js'
import { readForm } from './form.js'

/** What the introspection endpoint is built from. */
export interface IntrospectEndpointDeps {
  path: string
  bodyLimit: number
  authenticateClient: AuthenticateClient
  clients: ReadonlyMap<string, ClientRecord>
  introspect: Introspect
  /** Requests per client, or `false` for no limit. */
  perClient: Required<WindowLimit> | false
  store: AuthStore
  emit: EmitEvent
  docs: RouteDocConfig
}

/**
 * The token introspection endpoint (RFC 7662), in the scope `setUpEndpointScope` prepared,
 * beside the token endpoint: the same form rules, per-IP limit, client authentication and error
 * answers. Only clients allowed to introspect are answered (RFC 7662 §2.1), each within a
 * limit of its own, as §4 asks against token scanning.
 */
export function introspectEndpoint (fastify: FastifyInstance, deps: IntrospectEndpointDeps): void {
  const { path, bodyLimit, authenticateClient, clients, introspect, perClient, store, emit, docs } = deps

  // RFC 7662 §2.1: the endpoint takes POST only.
  refuseOtherMethods(fastify, path, 'introspection')

  fastify.post(path, { bodyLimit, config: docs }, async function introspection (request, reply) {
    const form = readForm(request.body)
    const clientId = await authenticateClient(request, form)
    // RFC 7662 §2.1 and §2.3: a caller that is not a client allowed to introspect is answered
    // as one whose credentials are wrong, which tells nothing about the token.
    const client = clients.get(clientId)
    if (client?.introspect !== true) {
      emit(request, { type: 'client.failure', clientId, reason: 'not_allowed_to_introspect' })
      throw oauthError('invalid_client', client === undefined ? 'Client authentication is required' : 'This client may not introspect tokens')
    }
    if (perClient !== false) {
      const { count, ttlMs } = await store.hit(`introspect:${encodeURIComponent(clientId)}`, perClient.timeWindow, Date.now())
      if (count > perClient.max) {
        emit(request, { type: 'introspection.throttled', clientId })
        throw oauthError('too_many_requests', 'Too many introspection requests; retry later', ttlMs / 1000)
      }
    }
    const token = form.token
    if (token === undefined) throw oauthError('invalid_request', "The 'token' parameter is required")
    // `token_type_hint` is not needed: the kind is told from the token (RFC 7662 §2.1).
    const answer = await introspect(request, token)
    // RFC 7662 §2.2 answers describe a token at one moment; RFC 6749 §5.1's rule fits them.
    reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
    return answer
  })
}
