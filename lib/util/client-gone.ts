import type { FastifyRequest } from 'fastify'
import type { Duplex } from 'node:stream'

/** What a client's request arrived on: an HTTP/1.1 connection, or an HTTP/2 stream. */
type Channel = Pick<Duplex, 'destroyed' | 'once' | 'removeListener'>

/**
 * A signal that aborts when the client of `request` has gone, so that work done only for its
 * answer (a password hash) can be dropped: over HTTP/1.1 when its connection closes (Node closes
 * it on the client's FIN too: it does not answer on a half-closed connection); over HTTP/2 when
 * its stream does (a client cancels one request without closing the connection). `stop` ends
 * the watch: a keep-alive connection carries many requests.
 */
export function watchClient (request: FastifyRequest): { signal: AbortSignal, stop: () => void } {
  const controller = new AbortController()
  const connection: Channel = (request.raw as { stream?: Channel }).stream ?? request.raw.socket
  const abort = (): void => { controller.abort() }
  if (connection.destroyed) abort()
  else connection.once('close', abort)
  return { signal: controller.signal, stop: () => { connection.removeListener('close', abort) } }
}
