import type { FastifyRequest } from 'fastify'
import { oauthError } from '../errors.js'
import type { Form } from '../grants/grant.js'
import type { EmitEvent } from '../logging/events.js'
import type { ClientRecord } from '../options/types.js'
import type { PasswordHasher } from '../password/hasher.js'

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
  const header = request.headers.authorization
  const basic = header === undefined ? null : /^basic +([A-Za-z0-9+/]+=*) *$/i.exec(header)
  if (header !== undefined && basic === null) {
    throw oauthError('invalid_client', 'Client authentication must use HTTP Basic')
  }
  if (basic !== null) {
    const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8')
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
 */
export function createClientAuthenticator ({ clients, defaultClientId, publicClient, passwords, emit }: ClientAuthDeps): AuthenticateClient {
  return async function authenticateClient (request, form) {
    if (clients === undefined) return defaultClientId
    const credentials = clientCredentials(request, form)
    // The default public client is known by its id alone, or by nothing at all (RFC 6749 §2.3: a
    // public client does not authenticate); its id is never a listed client's (checked in the options).
    if (publicClient && (credentials === undefined || (credentials.id === defaultClientId && credentials.secret === undefined))) return defaultClientId
    const client: ClientRecord | undefined = credentials === undefined ? undefined : clients.get(credentials.id)
    let ok = client !== undefined
    if (client !== undefined && credentials !== undefined) {
      ok = client.secretHash === undefined
        ? credentials.secret === undefined
        : credentials.secret !== undefined && await passwords.check(client.secretHash, credentials.secret)
    } else if (credentials?.secret !== undefined) {
      // An unknown client's secret is hashed too (against the dummy hash), so the time of the
      // answer does not tell which client ids exist.
      await passwords.check(undefined, credentials.secret)
    }
    if (!ok) {
      emit(request, { type: 'client.failure', ...(credentials === undefined ? {} : { clientId: credentials.id }) })
      throw oauthError('invalid_client', credentials === undefined ? 'Client authentication is required' : 'Client authentication failed')
    }
    return (client as ClientRecord).id
  }
}
