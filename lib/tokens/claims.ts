/*
 * What an access token says, and what `authenticate` makes of it: the types shared by the code
 * that signs tokens, the code that verifies them and the host's routes.
 */

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
  /**
   * The refresh-token family (the session) the token was issued from, when refresh tokens are on
   * (the OpenID Connect `sid`): reuse of the family's refresh tokens denies it.
   */
  sid?: string
  /**
   * The revocation epoch the grant began in, before any credential was checked: a
   * `revokeUserTokens` that returned after that denies the token, however close in time.
   */
  rev_epoch?: number
  [claim: string]: unknown
}

/**
 * The claims your access tokens carry besides the standard ones (the plugin's `claims` option puts
 * them in). Empty until you add yours by declaration merging, which types `request.user.claims`
 * and the `claims` option alike:
 *
 * ```ts
 * declare module 'fastify-token-auth' {
 *   interface CustomClaims { tenant: string }
 * }
 * ```
 */
export interface CustomClaims {}

/**
 * What `authenticate` puts on `request.user`. `Claims` are the extra claims, `CustomClaims` by
 * default; pass another type to read a token of a different shape.
 */
export interface AuthUser<Claims extends object = CustomClaims> {
  /** The token's subject: the user's id, or username when the user has no id. */
  sub: string
  /** The granted scopes, as a list. */
  scope: readonly string[]
  /** The client the token was issued to. */
  clientId: string
  /** Every claim of the verified token. */
  claims: AccessTokenClaims & Claims
}
