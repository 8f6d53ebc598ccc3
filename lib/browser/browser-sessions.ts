import type { FastifyReply, FastifyRequest } from 'fastify'
import { crossSiteRequest, oauthError } from '../errors.js'
import type { Issued, TokenResponse } from '../grants/grant.js'
import type { EmitEvent } from '../logging/events.js'
import type { ResolvedBrowserSessions } from '../options/browser-sessions.js'
import type { RefreshTokens } from '../tokens/refresh-tokens.js'
import { readCookie, REPEATED, writeCookie } from './cookie-jar.js'

/** The token a token or revocation request presents, and whether its answer goes to the cookie. */
export interface Presented {
  /** The body's token when it has one (the body wins), else the cookie's. */
  token: string | undefined
  /** The request is the app's page asking for cookie delivery, and passed the CSRF check. */
  browser: boolean
  /** The token came from the cookie. */
  fromCookie: boolean
  /** A browser login's cookie: the session the login replaces. */
  replaced?: string
}

/** Browser sessions on the token and revocation endpoints. */
export interface BrowserSessions {
  /**
   * The token the request presents (`bodyToken`, or the cookie's when `takesToken` and the body
   * has none). A request that sends the signal header, or relies on the cookie, must pass the CSRF
   * check, or is refused with 403. Throws `invalid_request` for a cookie sent twice.
   */
  present: (request: FastifyRequest, bodyToken: string | undefined, takesToken: boolean) => Presented
  /** A browser request's answer: the refresh token goes to the cookie, for the family's remaining lifetime. */
  deliver: (reply: FastifyReply, issued: Issued) => TokenResponse
  /** Clears the refresh cookie (a browser logout). */
  clear: (reply: FastifyReply) => void
  /**
   * After a browser login: ends the session whose cookie the login carried, as a logout would,
   * when it is the same client's. The new cookie overwrites the old one, so no one should hold
   * that session any longer (OWASP Session Management: a new session at each login).
   */
  endReplaced: (request: FastifyRequest, presented: Presented, clientId: string) => Promise<void>
}

/** Whether the request sends the signal header with the value `cookie`. */
export function asksForCookie (request: FastifyRequest, header: string): boolean {
  return request.headers[header] === 'cookie'
}

/**
 * The per-request choice between the JSON body and the cookie, and the CSRF defence of the
 * cookie (OWASP CSRF cheat sheet): SameSite=Strict keeps other sites' requests from carrying it,
 * and a request that relies on it must also carry a custom header (which a cross-site form
 * cannot set, and a cross-origin fetch can set only after a CORS preflight) and come from the
 * server's own origin or a listed one (`Origin`; without it, `Sec-Fetch-Site: same-origin`).
 */
export function createBrowserSessions ({ header, origins, cookieName }: ResolvedBrowserSessions, refreshTokens: RefreshTokens, emit: EmitEvent): BrowserSessions {
  function refuse (request: FastifyRequest, reason: string, description: string): never {
    emit(request, { type: 'csrf.refused', reason })
    throw crossSiteRequest(description)
  }

  function checkOrigin (request: FastifyRequest, signal: boolean): void {
    if (!signal) refuse(request, 'no_header', `A request that relies on the session cookie must send '${header}: cookie'`)
    const origin = request.headers.origin
    if (origin !== undefined) {
      if (origin !== `${request.protocol}://${request.host}` && !origins.has(origin)) {
        refuse(request, 'origin', 'The request comes from an origin that may not use the session cookie')
      }
      return
    }
    // Browsers send `Origin` on every POST; without it, only their Fetch Metadata can vouch.
    const site = request.headers['sec-fetch-site']
    if (site === undefined) refuse(request, 'no_origin', 'A request that relies on the session cookie must send Origin')
    if (site !== 'same-origin') refuse(request, 'fetch_site', 'The request comes from another site')
  }

  return {
    present (request, bodyToken, takesToken) {
      const signal = asksForCookie(request, header)
      // The body wins: a client that sends its token there is not a cookie session, and no
      // cookie it happens to carry changes that, nor is it read.
      if (!signal && (bodyToken !== undefined || !takesToken)) return { token: bodyToken, browser: false, fromCookie: false }
      if (!takesToken) {
        // A browser login: it never depends on the cookie, which names only the session it replaces
        // (none when it is sent twice, and which of the two is ours cannot be told).
        checkOrigin(request, signal)
        const replaced = readCookie(request, cookieName)
        return { token: bodyToken, browser: true, fromCookie: false, ...(typeof replaced === 'string' ? { replaced } : {}) }
      }
      // Read only when it would be used: a body token never depends on it.
      const cookie = bodyToken === undefined ? readCookie(request, cookieName) : undefined
      if (cookie === REPEATED) throw oauthError('invalid_request', 'The session cookie is sent more than once')
      if (!signal && cookie === undefined) return { token: undefined, browser: false, fromCookie: false }
      checkOrigin(request, signal)
      return cookie === undefined ? { token: bodyToken, browser: true, fromCookie: false } : { token: cookie, browser: true, fromCookie: true }
    },

    deliver (reply, { body, refreshExpiresAt }) {
      const { refresh_token: token, ...rest } = body
      if (token === undefined) return body
      // Max-Age is the family's remaining absolute lifetime: the cookie ends when the family does.
      const maxAge = Math.max(1, Math.ceil(((refreshExpiresAt as number) - Date.now()) / 1000))
      writeCookie(reply, cookieName, token, maxAge)
      return rest
    },

    clear: (reply) => { writeCookie(reply, cookieName, '', 0) },

    async endReplaced (request, { replaced }, clientId) {
      const found = replaced === undefined ? undefined : await refreshTokens.find(replaced)
      if (found === undefined || found.family.clientId !== clientId) return
      await refreshTokens.end(found.family)
      emit(request, { type: 'token.revoked', username: found.family.username, clientId, reason: 'replaced_by_login' })
    }
  }
}
