import type { FastifyRequest } from 'fastify'
import { oauthError, type OAuthError } from '../errors.js'

/*
 * The OAuth2 endpoints read a form as the bytes of its UTF-8 text (RFC 6749 Appendix B), and
 * @fastify/formbody reads every body that way. A body the client compressed (Content-Encoding,
 * RFC 9110 §8.4) or declared in another charset would be read as something it did not send: a
 * missing `grant_type`, or a password decoded differently than the client meant. Such a body is
 * refused before it is read.
 */

const FORM_TYPE = 'application/x-www-form-urlencoded'
/**
 * The charsets a form may declare. UTF-8 (RFC 6749 Appendix B) and its subset US-ASCII; and
 * ISO-8859-1, which common HTTP clients (Apache HttpClient's form entity) declare by default for
 * forms whose bytes are ASCII anyway. Percent-escapes are decoded as UTF-8 whatever is declared,
 * so a non-ASCII password from such a client does not match (invalid_grant), as it never did.
 */
const READABLE_CHARSETS = new Set(['utf-8', 'us-ascii', 'iso-8859-1'])
/** Methods whose body Fastify never parses (its `bodyless` methods). */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'TRACE'])

/** A header value as it may be echoed in a description: short and plain, never `"` or `\`. */
function echo (value: string): string | undefined {
  return /^[A-Za-z0-9._-]{1,20}$/.test(value) ? value : undefined
}

/**
 * Whether the request carries a body Fastify would read: never with a bodyless method; in HTTP/1.1
 * with a Transfer-Encoding or a Content-Length other than 0 (RFC 9112 §6.3: nothing else frames
 * one). HTTP/2 frames a body without either, and Fastify reads it whenever a Content-Type is sent.
 */
function hasBody (request: FastifyRequest): boolean {
  if (BODYLESS_METHODS.has(request.method)) return false
  const { headers } = request
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  if (length !== undefined) return length !== '0'
  return request.raw.httpVersionMajor >= 2 && headers['content-type'] !== undefined
}

/**
 * The refusal of a coding other than `allowed` in a Content-Encoding or Transfer-Encoding list,
 * or `undefined` when there is none. Every member of the list (Node joins repeated headers) must be
 * `allowed`, whatever its case and the spaces around it; an empty value or member is refused too.
 */
function codingError (value: string | undefined, field: string, allowed: string): OAuthError | undefined {
  if (value === undefined) return undefined
  const refused = value.split(',').map((coding) => coding.trim()).find((coding) => coding.toLowerCase() !== allowed)
  if (refused === undefined) return undefined
  const shown = echo(refused)
  return oauthError('invalid_request', shown === undefined
    ? `The request body must not be compressed (only ${field} ${allowed} is supported)`
    : `The request body must not be compressed (${field} '${shown}' is not supported)`)
}

/** The refusal of a Content-Encoding other than `identity` (RFC 9110 §8.4), or `undefined`. */
export function contentEncodingError (header: string | undefined): OAuthError | undefined {
  return codingError(header, 'Content-Encoding', 'identity')
}

/**
 * The refusal of a transfer coding other than `chunked`, or `undefined`. Node removes the
 * chunked framing and hands on whatever other coding the client listed (`gzip, chunked`) as it
 * came: bytes no form parser can read. RFC 9112 §6.1 would answer 501; the OAuth endpoints answer
 * every malformed request in one shape (RFC 6749 §5.2).
 */
export function transferEncodingError (header: string | undefined): OAuthError | undefined {
  return codingError(header, 'Transfer-Encoding', 'chunked')
}

/**
 * The refusal of a form whose Content-Type names a charset other than those above, or
 * `undefined`. Only a form's type is looked at: any other type is answered by Fastify's 415.
 * Every `charset` parameter counts (a repeated one too), its name and value in any case, its value
 * quoted or not; an empty or malformed value is refused. The parameters are split at every `;`,
 * inside quotes too: a quoted `;` is never legitimate in a charset, and a split that finds more
 * `charset` parameters than there are only ever refuses more.
 */
export function formCharsetError (header: string | undefined): OAuthError | undefined {
  if (header === undefined) return undefined
  const [mediaType, ...parameters] = header.split(';')
  if ((mediaType as string).trim().toLowerCase() !== FORM_TYPE) return undefined
  for (const parameter of parameters) {
    const equals = parameter.indexOf('=')
    if (equals === -1 || parameter.slice(0, equals).trim().toLowerCase() !== 'charset') continue
    let charset = parameter.slice(equals + 1).trim()
    // RFC 9110 §5.6.4: a quoted-string, with its quoted-pairs unescaped.
    if (charset.length >= 2 && charset.startsWith('"') && charset.endsWith('"')) charset = charset.slice(1, -1).replace(/\\(.)/g, '$1')
    if (READABLE_CHARSETS.has(charset.toLowerCase())) continue
    const shown = echo(charset)
    return oauthError('invalid_request', shown === undefined
      ? 'The form must be encoded in UTF-8 (only charset utf-8, us-ascii or iso-8859-1 is supported)'
      : `The form must be encoded in UTF-8 (charset '${shown}' is not supported)`)
  }
  return undefined
}

/**
 * The refusal of a request with more than one Content-Type field, or `undefined`. It is a
 * singleton field (RFC 9110 §8.3, §5.3: no sender generates it twice), and Node keeps the first
 * and drops the rest, while a proxy or firewall in front may read the last: the body would be
 * read as one type here and checked as another there.
 */
export function repeatedContentTypeError (rawHeaders: readonly string[]): OAuthError | undefined {
  let seen = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() === 'content-type' && ++seen > 1) {
      return oauthError('invalid_request', 'The request must have one Content-Type header')
    }
  }
  return undefined
}

/**
 * A preParsing hook for the OAuth2 endpoints' scope: refuses a body that is compressed, typed
 * twice, or a form declared in a charset other than UTF-8, before a byte of it is read. A request without a body
 * goes on as before, whatever its headers say. It runs after every onRequest hook, so the per-IP
 * limit (a route-level onRequest hook) has counted the request already.
 */
export async function refuseEncodedBodies (request: FastifyRequest): Promise<void> {
  if (!hasBody(request)) return
  const error = contentEncodingError(request.headers['content-encoding']) ??
    transferEncodingError(request.headers['transfer-encoding']) ?? repeatedContentTypeError(request.raw.rawHeaders) ??
    formCharsetError(request.headers['content-type'])
  if (error !== undefined) throw error
}
