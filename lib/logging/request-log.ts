import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'

/*
 * Fastify logs every request's URL, query string included. A client that puts a credential in
 * the query (`?access_token=…` — which RFC 6750 §2.3 discourages for exactly this reason — or a
 * password grant sent as query parameters) would leave it in the log even though this plugin
 * ignores it there. These names are masked.
 */
const CREDENTIAL_PARAMETERS = new Set(['access_token', 'refresh_token', 'id_token', 'token', 'password', 'client_secret', 'code', 'assertion'])

function decodeName (name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' ')).toLowerCase()
  } catch {
    return name.toLowerCase()
  }
}

/** `url` with the value of every credential-bearing query parameter replaced by `[Redacted]`. */
export function redactUrl (url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return url
  const query = url.slice(start + 1).split('&').map((pair) => {
    const equals = pair.indexOf('=')
    const name = equals === -1 ? pair : pair.slice(0, equals)
    return CREDENTIAL_PARAMETERS.has(decodeName(name)) ? `${name}=[Redacted]` : pair
  })
  return `${url.slice(0, start)}?${query.join('&')}`
}

/** What `requestLogSerializer` puts in a log line: the fields of Fastify's own `req` serializer. */
export interface RequestLogFields {
  [key: string]: unknown
  method?: string
  url?: string
  version?: string
  host?: string
  remoteAddress?: string
  remotePort?: number
}

/**
 * Fastify's own `req` log serializer, with credentials in the query string masked. Use it in the
 * host's logger: `Fastify({ logger: { serializers: { req: requestLogSerializer } } })`. The token
 * and revocation endpoints apply it to their own request logs whatever the host configures.
 */
export function requestLogSerializer (request: FastifyRequest): RequestLogFields {
  // Host code may log a `req` of its own making: a log call must never throw, so that is kept
  // as it is (pino's `redact` paths still apply to it).
  if (typeof (request as { url?: unknown } | null)?.url !== 'string') return request as unknown as RequestLogFields
  return {
    method: request.method,
    url: redactUrl(request.url),
    version: request.headers['accept-version'] as string | undefined,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

/**
 * Makes every request logger of `fastify`'s scope serialize `req` with `requestLogSerializer`,
 * whatever the host set, so a credential sent in a query string of the token endpoints stays out
 * of their request logs.
 *
 * Done through the scope's child-logger factory, on a masking logger made once per parent logger,
 * not through routes' `logSerializers`: with those, pino copies every serializer into each
 * request's logger, which is a real share of what a throttled login costs.
 */
export function maskRequestLogs (fastify: FastifyInstance): void {
  const inherited = fastify.childLoggerFactory
  const masking = new WeakMap<FastifyBaseLogger, FastifyBaseLogger>()
  const serializers = { req: requestLogSerializer }
  fastify.setChildLoggerFactory(function maskedChildLogger (logger, bindings, options, rawRequest) {
    let parent = masking.get(logger)
    if (parent === undefined) {
      parent = logger.child({}, { serializers })
      masking.set(logger, parent)
    }
    // Serializers the host set for this scope are kept, except for `req`. Fastify hands them on
    // as a prototype chain, which pino reads with `for…in`: so is the copy.
    const own = options.serializers === undefined
      ? options
      : { ...options, serializers: Object.assign(Object.create(options.serializers) as object, serializers) }
    return inherited.call(this, parent, bindings, own, rawRequest)
  })
}
