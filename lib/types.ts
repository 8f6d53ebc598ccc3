// `request.user` is @fastify/jwt's declaration, so a host that imports only this package must load
// @fastify/jwt's types too; without this line its FastifyRequest augmentation never reaches them.
/// <reference types="@fastify/jwt" preserve="true" />
import type { preHandlerAsyncHookHandler } from 'fastify'
import type { AuthUser } from './tokens/claims.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A preHandler that accepts a request only with a valid `Authorization: Bearer` access
     * token and sets `request.user`; otherwise it answers 400/401 with a `WWW-Authenticate`
     * challenge (RFC 6750 §3).
     */
    authenticate: preHandlerAsyncHookHandler
    /**
     * A preHandler that requires every named scope on the access token, answering 403
     * `insufficient_scope` otherwise. It authenticates the request itself when
     * `authenticate` did not run before it.
     */
    requireScopes: (...scopes: string[]) => preHandlerAsyncHookHandler
    /**
     * "Log out everywhere", e.g. after a password change: ends every refresh-token family of
     * the user whose `sub` is `userId`, and with `revocableAccessTokens` rejects every access
     * token issued to them until now.
     */
    revokeUserTokens: (userId: string | number) => Promise<void>
  }
}

// `request.user` is declared by @fastify/jwt through its FastifyJWT interface; this is
// the type our `authenticate` gives it.
declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: AuthUser
  }
}
