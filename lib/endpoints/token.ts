import type { FastifyInstance } from 'fastify'
import type { BrowserSessions } from '../browser/browser-sessions.js'
import type { DeviceCookies } from '../browser/device-cookies.js'
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
  /** Present when browser sessions are on. */
  sessions: BrowserSessions | undefined
  /** Present when device cookies are on. */
  devices: DeviceCookies | undefined
}

/**
 * The token endpoint (RFC 6749 §3.2), in the scope `setUpEndpointScope` prepared: reads the
 * form, authenticates the client, and hands the request to its grant type.
 */
export function tokenEndpoint (fastify: FastifyInstance, { path, bodyLimit, authenticateClient, grants, docs, sessions, devices }: TokenEndpointDeps): void {
  const supported = `Supported grant types: ${[...grants.keys()].join(', ')}`
  refuseOtherMethods(fastify, path, 'token')

  fastify.post(path, { bodyLimit, config: docs }, async function token (request, reply): Promise<TokenResponse> {
    let form = readForm(request.body)
    // A browser session's page: CSRF-checked before anything else, and its refresh grant may
    // present the token in the cookie rather than the body.
    const refreshing = form.grant_type === 'refresh_token'
    const presented = sessions?.present(request, refreshing ? form.refresh_token : undefined, refreshing)
    if (presented?.fromCookie === true) form = { ...form, refresh_token: presented.token as string }
    const clientId = await authenticateClient(request, form)
    const grantType = form.grant_type
    if (grantType === undefined) throw oauthError('invalid_request', "The 'grant_type' parameter is required")
    const grant = grants.get(grantType)
    if (grant === undefined) throw oauthError('unsupported_grant_type', supported)
    const issued = await grant(request, form, clientId)
    // RFC 6749 §5.1: token responses must not be cached.
    reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
    if (presented?.browser !== true) return issued.body
    await (sessions as BrowserSessions).endReplaced(request, presented, clientId)
    if (issued.device !== undefined) (devices as DeviceCookies).remember(reply, issued.device)
    return (sessions as BrowserSessions).deliver(reply, issued)
  })
}
