import type { FastifyRequest } from 'fastify'
import { oauthError } from '../errors.js'
import type { Form } from '../grants/grant.js'
import type { EmitEvent } from '../logging/events.js'
import type { ClientRecord } from '../options/types.js'
import type { PasswordHasher } from '../password/hasher.js'
import { sourceOf } from '../throttle/keys.js'
import type { ClientThrottle } from '../throttle/login-throttle.js'
import { authorizationHeader, DUPLICATE } from '../util/authorization-header.js'

/** Authenticates the client of a token or revocation request; resolves its `client_id`. */
export type AuthenticateClient = (request: FastifyRequest, form: Form) => Promise<string>

/** What client authentication is built from. */
export interface ClientAuthDeps {
  /** The registered clients; `undefined` when client authentication is off. */
  clients: ReadonlyMap<string, ClientRecord> | undefined
  /** The `client_id` of every request when client authentication is off. */
  defaultClientId: string
  /** With `clients`: a request without client credentials is the default client rather than refused. */
  publicClient: boolean
  passwords: PasswordHasher
  /** Failed client authentications per (client_id, source); `undefined` when login throttling is off. */
  throttle: ClientThrottle | undefined
  emit: EmitEvent
}

interface ClientCredentials {
  id: string
  secret: string | undefined
}

/** Decodes one part of HTTP Basic client credentials (RFC 6749 §2.3.1: form-urlencoded first). */
function formDecode (value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '))
}

/** The credentials a request presents, from HTTP Basic or the form (RFC 6749 §2.3.1). */
function clientCredentials (request: FastifyRequest, form: Form): ClientCredentials | undefined {
  const header = authorizationHeader(request.raw.rawHeaders)
  // Two headers could carry two identities, and a proxy that reads the other one would see a
  // different client than the plugin: the request is malformed (RFC 6749 §5.2 invalid_request).
  if (header === DUPLICATE) throw oauthError('invalid_request', 'Only one Authorization header is allowed')
  const basic = header === undefined ? null : /^basic +([A-Za-z0-9+/]+=*) *$/i.exec(header)
  if (header !== undefined && basic === null) {
    throw oauthError('invalid_client', 'Client authentication must use HTTP Basic')
  }
  const decoded = basic === null ? undefined : Buffer.from(basic[1] as string, 'base64').toString('utf8')
  // `Basic Og==` is ":", an empty id and secret: what Swagger UI's password flow sends when its
  // client fields are left empty. It names no client, so it counts as no credentials at all.
  if (decoded !== undefined && decoded !== ':') {
    const colon = decoded.indexOf(':')
    let id: string, secret: string
    try {
      if (colon < 1) throw new URIError('no client id')
      id = formDecode(decoded.slice(0, colon))
      secret = formDecode(decoded.slice(colon + 1))
    } catch {
      throw oauthError('invalid_client', 'The HTTP Basic client credentials are malformed')
    }
    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
    if (form.client_secret !== undefined || (form.client_id !== undefined && form.client_id !== id)) {
      throw oauthError('invalid_request', 'Client credentials were sent both in the header and in the body')
    }
    return { id, secret: secret === '' ? undefined : secret }
  }
  if (form.client_id === undefined) return undefined
  return { id: form.client_id, secret: form.client_secret }
}

/**
 * Client authentication (RFC 6749 §2.3). Without registered clients every request is the
 * default public client. With them, a confidential client proves itself with its secret; a
 * public one is known by its id and must not send a secret it does not have.
 *
 * Every presented secret is reserved in the client throttle and checked with argon2, against
 * a dummy hash when the id names no confidential client: an unknown `client_id` takes as long
 * as a known one with a wrong secret (ASVS 6.3.8), and neither can be guessed at faster than
 * the throttle allows.
 */
export function createClientAuthenticator ({ clients, defaultClientId, publicClient, passwords, throttle, emit }: ClientAuthDeps): AuthenticateClient {
  function failure (request: FastifyRequest, credentials: ClientCredentials | undefined): never {
    emit(request, { type: 'client.failure', ...(credentials === undefined ? {} : { clientId: credentials.id }) })
    throw oauthError('invalid_client', credentials === undefined ? 'Client authentication is required' : 'Client authentication failed')
  }

  /** Checks a presented secret, inside a reservation of the client throttle. */
  async function checkSecret (request: FastifyRequest, credentials: ClientCredentials & { secret: string }, client: ClientRecord | undefined): Promise<boolean> {
    const reservation = await throttle?.(credentials.id, sourceOf(request))
    if (reservation !== undefined && !('succeeded' in reservation)) {
      emit(request, { type: 'client.throttled', clientId: credentials.id, reason: reservation.limit })
      throw oauthError('too_many_requests', 'Too many failed client authentications; retry later', reservation.retryAfterMs / 1000)
    }
    let ok: boolean
    try {
      ok = await passwords.check(client?.secretHash, credentials.secret, request)
    } catch (error) {
      await reservation?.cancelled()
      throw error
    }
    // `check` verified against the dummy hash when there is no secretHash: never a success then.
    if (ok) await reservation?.succeeded()
    return ok
  }

  return async function authenticateClient (request, form) {
    if (clients === undefined) return defaultClientId
    const credentials = clientCredentials(request, form)
    // A `client_secret` without the `client_id` it belongs to (RFC 6749 §2.3.1) names no client:
    // credentials that fail, never "no credentials", so `publicClient` does not take it either.
    if (credentials === undefined && form.client_secret !== undefined) return failure(request, credentials)
    // The default public client is known by its id alone, or by nothing at all (RFC 6749 §2.3: a
    // public client does not authenticate); its id is never a listed client's (checked in the options).
    if (publicClient && (credentials === undefined || (credentials.id === defaultClientId && credentials.secret === undefined))) return defaultClientId
    if (credentials === undefined) return failure(request, credentials)
    const client = clients.get(credentials.id)
    const { secret } = credentials
    const ok = secret === undefined
      ? client !== undefined && client.secretHash === undefined
      : await checkSecret(request, { ...credentials, secret }, client)
    if (!ok) return failure(request, credentials)
    return (client as ClientRecord).id
  }
}
