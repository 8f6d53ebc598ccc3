import type { FastifyReply, FastifyRequest } from 'fastify'
import '@fastify/cookie'

/*
 * The plugin's own cookies, read and written through @fastify/cookie (registered on the
 * endpoints' scope by `setUpBrowserSessions`, without its parsing hook: only these routes parse
 * the Cookie header, and only when they need a cookie).
 */

/** What `readCookie` answers for a cookie the request carries more than once. */
export const REPEATED = null

/**
 * The name of one `name=value` pair of a Cookie header, as `parseCookie` reads it: what stands
 * before the first `=`, without the spaces and tabs around it (as a browser trims a Set-Cookie
 * name, RFC 6265 §5.2). Counting pairs by any other reading would let `name =planted` pass for
 * another cookie here while the parser takes it for ours.
 */
function nameOf (pair: string): string | undefined {
  let end = pair.indexOf('=')
  if (end === -1) return undefined
  // By hand rather than by a regular expression: a long run of blanks costs no backtracking.
  let start = 0
  while (start < end && isBlank(pair.charCodeAt(start))) start++
  while (end > start && isBlank(pair.charCodeAt(end - 1))) end--
  return pair.slice(start, end)
}

const isBlank = (code: number): boolean => code === 32 || code === 9

/**
 * The value of cookie `name`: `undefined` when the request carries none (or an empty one),
 * `REPEATED` when it carries two (one set by another path or a sibling domain can shadow ours;
 * neither can be trusted to be the one we set).
 */
export function readCookie (request: FastifyRequest, name: string): string | undefined | typeof REPEATED {
  const header = request.headers.cookie
  // Most requests of an API client carry no cookie, or not ours: no parsing for them.
  if (header === undefined || !header.includes(name)) return undefined
  let count = 0
  for (const pair of header.split(';')) if (nameOf(pair) === name) count++
  if (count > 1) return REPEATED
  const value = request.server.parseCookie(header)[name]
  return value === undefined || value === '' ? undefined : value
}

/**
 * Sets cookie `name` for `maxAge` seconds (0 clears it): `HttpOnly` (no script reads it),
 * `Secure`, `SameSite=Strict` (no other site's page sends it), `Path=/` and no `Domain` (the
 * `__Host-` prefix holds the browser to that). Written here rather than through
 * `reply.setCookie`, so that defaults a host gave its own @fastify/cookie (a `domain`, say)
 * never reach these cookies.
 */
export function writeCookie (reply: FastifyReply, name: string, value: string, maxAge: number): void {
  // Fastify adds a Set-Cookie line to those already there, never replaces them.
  reply.header('set-cookie', reply.server.serializeCookie(name, value, { httpOnly: true, secure: true, sameSite: 'strict', path: '/', maxAge }))
}
