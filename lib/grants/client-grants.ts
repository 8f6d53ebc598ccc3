import { oauthError } from '../errors.js'
import { DEFAULT_CLIENT_GRANTS, grantsOf } from '../options/clients.js'
import type { ClientRecord } from '../options/types.js'
import type { GrantHandler } from './grant.js'

/**
 * Each grant type, refused with `unauthorized_client` (RFC 6749 §5.2) to a client whose `grants`
 * do not list it. A client without a list may use what every client could before lists existed.
 *
 * The client credentials grant asked for by a client that did not authenticate (the default
 * public client, or a listed one without a secret) is `invalid_client` instead: §4.4.2 says the
 * client MUST authenticate, and §5.2 names "no client authentication included" as `invalid_client`,
 * whose 401 and Basic challenge tell a misconfigured client what it left out.
 */
export function restrictGrantsToClients (grants: ReadonlyMap<string, GrantHandler>, clients: ReadonlyMap<string, ClientRecord> | undefined): Map<string, GrantHandler> {
  return new Map([...grants].map(([grantType, handler]) => {
    const restricted: GrantHandler = async (request, form, clientId) => {
      // The default client (no `clients`, or no credentials under `publicClient`) is no entry.
      const client = clients?.get(clientId)
      if (grantType === 'client_credentials' && client?.secretHash === undefined) {
        throw oauthError('invalid_client', 'Client authentication is required')
      }
      const allowed: readonly string[] = client === undefined ? DEFAULT_CLIENT_GRANTS : grantsOf(client)
      if (!allowed.includes(grantType)) throw oauthError('unauthorized_client', `This client may not use the ${grantType} grant`)
      return await handler(request, form, clientId)
    }
    return [grantType, restricted]
  }))
}
