import type { FastifyInstance } from 'fastify'
import type { ClientRecord } from '../options/types.js'
import type { RouteDocConfig } from '../openapi.js'

/** Where the OAuth2 endpoints are, as paths of this app (prefixes included); `undefined` when not served. */
export interface EndpointPaths {
  token: string
  revocation: string | undefined
  introspection: string | undefined
  jwks: string | undefined
}

/** What the metadata document is derived from. */
export interface MetadataDeps {
  /** The configured `issuer`, exactly as given, and parsed. */
  issuer: string
  issuerUrl: URL
  paths: EndpointPaths
  grantTypes: readonly string[]
  clients: ReadonlyMap<string, ClientRecord> | undefined
  publicClient: boolean
  scopes: readonly string[]
  docs: RouteDocConfig
}

const WELL_KNOWN = '/.well-known/oauth-authorization-server'
// The document changes only when the app's options do; clients may keep it an hour.
const CACHE_CONTROL = 'public, max-age=3600'
const SECRET_METHODS = ['client_secret_basic', 'client_secret_post']

/**
 * Where RFC 8414 §3.1 has clients look for the metadata of `issuer`: the well-known path, then
 * the issuer's own path without its terminating "/".
 */
export function metadataPath (issuerUrl: URL): string {
  return WELL_KNOWN + issuerUrl.pathname.replace(/\/$/, '')
}

/** How clients may authenticate at the token and revocation endpoints (RFC 8414 §2, RFC 7591 §2). */
function tokenAuthMethods (clients: ReadonlyMap<string, ClientRecord> | undefined, publicClient: boolean): string[] {
  if (clients === undefined) return ['none']
  const listed = [...clients.values()]
  return [
    ...(listed.some((client) => client.secretHash !== undefined) ? SECRET_METHODS : []),
    ...(publicClient || listed.some((client) => client.secretHash === undefined) ? ['none'] : [])
  ]
}

/**
 * The authorization server metadata (RFC 8414 §2), every member derived from the options. URLs
 * are the issuer's origin followed by the routes' own paths: never built from the request, whose
 * Host header the client chooses.
 */
export function buildMetadata ({ issuer, issuerUrl, paths, grantTypes, clients, publicClient, scopes }: MetadataDeps): Record<string, unknown> {
  const url = (path: string): string => issuerUrl.origin + path
  const authMethods = tokenAuthMethods(clients, publicClient)
  return {
    issuer,
    token_endpoint: url(paths.token),
    ...(paths.jwks === undefined ? {} : { jwks_uri: url(paths.jwks) }),
    ...(scopes.length === 0 ? {} : { scopes_supported: scopes }),
    // REQUIRED by RFC 8414 §2, and there is no authorization endpoint: no response type is supported.
    response_types_supported: [],
    grant_types_supported: grantTypes,
    token_endpoint_auth_methods_supported: authMethods,
    ...(paths.revocation === undefined
      ? {}
      : { revocation_endpoint: url(paths.revocation), revocation_endpoint_auth_methods_supported: authMethods }),
    ...(paths.introspection === undefined
      ? {}
      : { introspection_endpoint: url(paths.introspection), introspection_endpoint_auth_methods_supported: SECRET_METHODS })
  }
}

/** Serves the metadata document at the RFC 8414 §3.1 path of the issuer; built once, as the options do not change. */
export function metadataEndpoint (fastify: FastifyInstance, deps: MetadataDeps): void {
  const body = JSON.stringify(buildMetadata(deps))
  fastify.get(metadataPath(deps.issuerUrl), { config: deps.docs }, async (_request, reply) => {
    // RFC 8414 §3.2: a JSON object, application/json.
    reply.headers({ 'content-type': 'application/json; charset=utf-8', 'cache-control': CACHE_CONTROL })
    return body
  })
}
