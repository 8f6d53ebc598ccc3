// `request.user` is @fastify/jwt's declaration, so a host that imports only this package must load
// @fastify/jwt's types too; without this line its FastifyRequest augmentation never reaches them.
/// <reference types="@fastify/jwt" preserve="true" />
import type { preHandlerAsyncHookHandler } from 'fastify'
import type { PasswordHashing } from './password/hasher.js'
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
    /**
     * The plugin's password hashing for the host's own routes (sign-up, password change): its
     * argon2id parameters, within the bound that logins have; a full pool rejects with
     * `FST_TOKEN_AUTH_HASHING_BUSY` (503, `Retry-After`). Present when the plugin issues tokens
     * (`findUser` given), not in verify-only mode.
     */
    passwordHashing: PasswordHashing
  }
}

// `request.user` is declared by @fastify/jwt through its FastifyJWT interface; this is
// the type our `authenticate` gives it.
declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: AuthUser
  }
}
