import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/*
 * Fastify logs every request's URL, query string included. A client that puts a credential in
 * the query (`?access_token=…` — which RFC 6750 §2.3 discourages for exactly this reason — or a
 * password grant sent as query parameters) would leave it in the log even though this plugin
 * ignores it there. These names are masked.
 */
const CREDENTIAL_PARAMETERS = new Set(['access_token', 'refresh_token', 'id_token', 'token', 'password', 'client_secret', 'code', 'assertion'])

/**
 * The words of a parameter name, decoded escape by escape (a malformed escape elsewhere in it does
 * not keep the rest from being read) and again if it was encoded twice, in lower case. A name is
 * a credential's when one of its words is: `password[]`, `user[password]`, ` password`,
 * `password%00` are all still read as a password by some parser, or by a reader of the log.
 */
function decodeName (name: string): string {
  let decoded = name.replace(/\+/g, ' ')
  for (let pass = 0; pass < 3; pass++) {
    const next = decoded.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    if (next === decoded) break
    decoded = next
  }
  return decoded
}

function nameOf (pair: string): string {
  const equals = pair.indexOf('=')
  return equals === -1 ? pair : pair.slice(0, equals)
}

function isCredential (pair: string): boolean {
  return decodeName(nameOf(pair)).toLowerCase().split(/[^a-z0-9_]+/).some((word) => CREDENTIAL_PARAMETERS.has(word))
}

/**
 * One `&`-separated parameter, masked from the first `;`- or `?`-separated part that names a
 * credential to its end: some parsers also split on `;` (`a=1;password=…`), a query read from a
 * `;` may hold the `?` where another reader starts it, and the value a parser splitting on `&`
 * alone reads is masked whole all the same.
 */
function redactPair (pair: string): string {
  // The parts with the delimiters between them: `a=1;password=x` is ['a=1', ';', 'password=x'].
  const parts = pair.split(/([;?])/)
  const at = parts.findIndex((part, i) => i % 2 === 0 && isCredential(part))
  if (at === -1) return pair
  const name = nameOf(parts[at] as string)
  // A whole pair encoded by mistake (`password%3Dhunter2`) is a name that holds its value: the
  // name goes too.
  return parts.slice(0, at).join('') + (/[=&;?]/.test(decodeName(name)) ? '[Redacted]' : `${name}=[Redacted]`)
}

/** `url` with the value of every credential-bearing query parameter replaced by `[Redacted]`. */
export function redactUrl (url: string): string {
  // With `routerOptions.useSemicolonDelimiter`, Fastify reads the query from a `;` as well.
  const start = url.search(/[?;]/)
  if (start === -1) return url
  return `${url.slice(0, start + 1)}${url.slice(start + 1).split('&').map(redactPair).join('&')}`
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

/**
 * Fastify's default not-found answer, with credentials in the query string masked, and without
 * its log line: Fastify's own handler writes the raw URL into an info-level message, which no
 * serializer reaches, so a client with a typo in the path (`/token/?password=…`) would leave its
 * password in the log. The request's own lines (`incoming request`, and `request completed` with
 * status 404) still tell of it, their URL masked by `requestLogSerializer`. Use it in the host:
 * `app.setNotFoundHandler(notFoundHandler)`.
 */
export function notFoundHandler (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(404).send({ message: `Route ${request.method}:${redactUrl(request.url)} not found`, error: 'Not Found', statusCode: 404 })
}
