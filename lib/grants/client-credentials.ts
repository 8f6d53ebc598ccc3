import { oauthError } from '../errors.js'
import type { EmitEvent } from '../logging/events.js'
import type { ClientRecord } from '../options/types.js'
import { parseScope } from '../scope.js'
import type { GrantHandler } from './grant.js'
import type { IssueTokens } from './issue.js'

/** What the client credentials grant is built from. */
export interface ClientCredentialsGrantDeps {
  clients: ReadonlyMap<string, ClientRecord>
  issue: IssueTokens
  emit: EmitEvent
}

/**
 * The client credentials grant (RFC 6749 §4.4): a confidential client gets an access token for
 * itself, with `sub` and `client_id` its own id, and no refresh token (§4.4.3).
 */
export function createClientCredentialsGrant ({ clients, issue, emit }: ClientCredentialsGrantDeps): GrantHandler {
  return async function clientCredentialsGrant (request, form, clientId) {
    // RFC 6749 §4.4.2: the client MUST authenticate. It did: only a listed client whose `grants`
    // name this grant gets here (restrictGrantsToClients refuses the others, the default client
    // included), and the options refuse that list to a client without a secret.
    const client = clients.get(clientId) as ClientRecord
    const requested = parseScope(form.scope)
    const allowed = client.scopes ?? []
    // RFC 6749 §3.3, as for users: a scope the client may not have is an error, not silently dropped.
    if (requested !== undefined && !requested.every((s) => allowed.includes(s))) {
      throw oauthError('invalid_scope', 'The requested scope exceeds what this client may be granted')
    }
    const issued = await issue(request, { kind: 'client', sub: client.id, clientId: client.id, scope: requested ?? [...allowed], requested })
    emit(request, { type: 'client.token', clientId: client.id })
    return issued
  }
}
