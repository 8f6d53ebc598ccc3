import { fail } from './checks.js'
import { SCOPE_TOKEN } from '../scope.js'
import type { ClientGrantType, ClientRecord } from './types.js'

/*
 * What each registered client may do: the grant types it may use, the scopes it may get for
 * itself, whether it may introspect. Checked once at registration; read by the grants, the
 * endpoints and the documents (OpenAPI, RFC 8414 metadata).
 */

const GRANT_TYPES: readonly ClientGrantType[] = ['password', 'refresh_token', 'client_credentials']

/**
 * What a `clients` entry without `grants` may use, and the default public client too: logging
 * users in and refreshing their sessions, what every client could before `grants` existed. A
 * rule about entries rather than an option, so not in DEFAULTS (whose leaves are option values).
 */
export const DEFAULT_CLIENT_GRANTS: readonly ClientGrantType[] = Object.freeze(['password', 'refresh_token'])

/** The grant types `client` may use. */
export function grantsOf (client: ClientRecord): readonly string[] {
  return client.grants ?? DEFAULT_CLIENT_GRANTS
}

/** Checks the permission fields of one `clients` entry (its `id` and `secretHash` are checked by the caller). */
export function checkClientPermissions (client: ClientRecord): void {
  const name = 'clients'
  const { id, grants, scopes, introspect } = client
  if (grants !== undefined && (!Array.isArray(grants) || !grants.every((g) => GRANT_TYPES.includes(g)))) {
    fail(name, `client "${id}" has \`grants\` that are not a list of ${GRANT_TYPES.join(', ')}`)
  }
  // RFC 6749 §4.4: only a confidential client may use the client credentials grant, and RFC 7662
  // §2.1 wants the introspection endpoint closed to callers that do not authenticate.
  if (client.secretHash === undefined && grants?.includes('client_credentials') === true) {
    fail(name, `client "${id}" is public (no \`secretHash\`) and cannot use the client_credentials grant`)
  }
  if (introspect !== undefined && typeof introspect !== 'boolean') fail(name, `client "${id}" needs a boolean \`introspect\``)
  if (client.secretHash === undefined && introspect === true) fail(name, `client "${id}" is public (no \`secretHash\`) and cannot introspect`)
  if (scopes !== undefined && (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s)))) {
    fail(name, `client "${id}" needs \`scopes\` to be a list of scope names (RFC 6749 §3.3)`)
  }
}

/** Whether some registered client may use the client credentials grant. */
export function servesClientCredentials (clients: ReadonlyMap<string, ClientRecord> | undefined): boolean {
  return clients !== undefined && [...clients.values()].some((client) => grantsOf(client).includes('client_credentials'))
}

/** Whether some registered client may introspect tokens. */
export function servesIntrospection (clients: ReadonlyMap<string, ClientRecord> | undefined): boolean {
  return clients !== undefined && [...clients.values()].some((client) => client.introspect === true)
}

/** The scopes the registered clients may get for themselves, each once. */
export function clientScopes (clients: ReadonlyMap<string, ClientRecord> | undefined): string[] {
  return [...new Set([...clients?.values() ?? []].flatMap((client) => client.scopes ?? []))]
}
