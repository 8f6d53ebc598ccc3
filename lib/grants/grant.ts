import type { FastifyRequest } from 'fastify'
import type { UserRecord } from '../options/types.js'
import type { Device } from '../throttle/login-throttle.js'

/*
 * The shape every grant type shares: what it is handed (the request, its form and the client
 * that authenticated) and what it decides (a `Grant`), which one step turns into tokens.
 */

/** A token or revocation request's form: each parameter that has a value, once (RFC 6749 §3.2). */
export type Form = Readonly<Record<string, string>>

/** The answer to a token request, as RFC 6749 §5.1 spells it. */
export interface TokenResponse {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  refresh_token?: string
  scope?: string
}

/** What every grant decides: the subject, the client and the scopes. */
interface GrantBase {
  /** The access token's `sub`. */
  sub: string
  clientId: string
  /** The scopes granted. */
  scope: readonly string[]
  /** The scopes the client asked for, when it asked (RFC 6749 §5.1 then needs `scope` only when they differ). */
  requested: readonly string[] | undefined
}

/** What a grant for a user decided: who gets tokens, for which client, with which scopes. */
export interface UserGrant extends GrantBase {
  kind?: 'user'
  user: UserRecord
  /** The name `findUser` found the user by; a refresh looks the user up by it again. */
  username: string
  /**
   * The revocation epoch read before any credential was checked (`Revocation.epoch`): what is
   * issued dies with a `revokeUserTokens` that returns after that read.
   */
  epoch: number
  /**
   * The refresh token to hand out: the successor a refresh grant rotated in, with its family's
   * id; or `undefined` to start a new family (when refresh tokens are on).
   */
  refresh?: { token: string, familyId: string, expiresAt: number }
}

/**
 * What the client credentials grant decided: a token a client gets for itself (`sub` = its
 * id). No user, so no host claims; and never a refresh token (RFC 6749 §4.4.3): the client
 * can always ask again with its credentials.
 */
export interface ClientGrant extends GrantBase {
  kind: 'client'
}

/** What a grant decided, which the one issuing step turns into tokens. */
export type Grant = UserGrant | ClientGrant

/** What a grant hands the endpoint: the answer, and what the endpoint needs to deliver it. */
export interface Issued {
  body: TokenResponse
  /** When the family of `body.refresh_token` ends (milliseconds), when there is one: a cookie's lifetime. */
  refreshExpiresAt?: number
  /** After a browser login with device cookies on: the device whose cookie to set. */
  device?: Device
}

/** A grant type's handler, for a request whose client has already authenticated. */
export type GrantHandler = (request: FastifyRequest, form: Form, clientId: string) => Promise<Issued>
