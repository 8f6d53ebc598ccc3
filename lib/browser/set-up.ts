import type { FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'

/**
 * Gives the token and revocation endpoints' scope @fastify/cookie's parser and serializer. A host
 * that registered @fastify/cookie where these routes see it lends its own; otherwise one is
 * registered in this scope only, without its parsing hook, so no other route of the host parses
 * cookies on the plugin's account, and these parse only the requests that need a cookie.
 */
export async function setUpBrowserSessions (scope: FastifyInstance): Promise<void> {
  if (!scope.hasDecorator('parseCookie')) await scope.register(cookie, { hook: false })
}
