import type { FastifyInstance } from 'fastify'
import { oauthError } from '../errors.js'
import type { GrantHandler, TokenResponse } from '../grants/grant.js'
import type { RouteDocConfig } from '../openapi.js'
import type { AuthenticateClient } from './client-auth.js'
import { refuseOtherMethods } from './endpoint-scope.js'
import { readForm } from './form.js'

/** What the token endpoint is built from. */
export interface TokenEndpointDeps {
  path: string
  bodyLimit: number
  authenticateClient: AuthenticateClient
  /** The grant types served, by `grant_type` value. */
  grants: ReadonlyMap<string, GrantHandler>
  docs: RouteDocConfig
}

/**
 * The token endpoint (RFC 6749 §3.2), in the scope `setUpEndpointScope` prepared: reads the
 * form, authenticates the client, and hands the request to its grant type.
 */
export function tokenEndpoint (fastify: FastifyInstance, { path, bodyLimit, authenticateClient, grants, docs }: TokenEndpointDeps): void {
  const supported = `Supported grant types: ${[...grants.keys()].join(', ')}`
  refuseOtherMethods(fastify, path, 'token')

  fastify.post(path, { bodyLimit, config: docs }, async function token (request, reply): Promise<TokenResponse> {
    const form = readForm(request.body)
    const clientId = await authenticateClient(request, form)
    const grantType = form.grant_type
    if (grantType === undefined) throw oauthError('invalid_request', 'The "grant_type" parameter is required')
    const grant = grants.get(grantType)
    if (grant === undefined) throw oauthError('unsupported_grant_type', supported)
    const { body } = await grant(request, form, clientId)
    // RFC 6749 §5.1: token responses must not be cached.
    reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
    return body
  })
}
