import type { FastifyRequest } from 'fastify'
import type { Duplex } from 'node:stream'

/** What a client's request arrived on: an HTTP/1.1 connection, or an HTTP/2 stream. */
type Channel = Pick<Duplex, 'destroyed' | 'once' | 'removeListener'>

/** The requests watching one channel, and its one `close` listener, which aborts them all. */
interface Watch {
  controllers: Set<AbortController>
  close: () => void
}

// One listener per channel, however many requests watch it: an HTTP/1.1 client may pipeline
// many logins on one connection, and a listener each would pass Node's listener limit.
const watches = new WeakMap<Channel, Watch>()

/**
 * A signal that aborts when the client of `request` has gone, so that work done only for its
 * answer (a password hash) can be dropped: over HTTP/1.1 when its connection closes (Node closes
 * it on the client's FIN too: it does not answer on a half-closed connection); over HTTP/2 when
 * its stream does (a client cancels one request without closing the connection). `stop` ends
 * the watch: a keep-alive connection carries many requests.
 */
export function watchClient (request: FastifyRequest): { signal: AbortSignal, stop: () => void } {
  const controller = new AbortController()
  const channel: Channel = (request.raw as { stream?: Channel }).stream ?? request.raw.socket
  if (channel.destroyed) {
    controller.abort()
    return { signal: controller.signal, stop: () => {} }
  }
  let watch = watches.get(channel)
  if (watch === undefined) {
    const controllers = new Set<AbortController>()
    const close = (): void => {
      watches.delete(channel)
      for (const each of controllers) each.abort()
    }
    watch = { controllers, close }
    watches.set(channel, watch)
    channel.once('close', close)
  }
  const { controllers, close } = watch
  controllers.add(controller)
  return {
    signal: controller.signal,
    stop: () => {
      controllers.delete(controller)
      if (controllers.size === 0 && watches.get(channel) === watch) {
        watches.delete(channel)
        channel.removeListener('close', close)
      }
    }
  }
}
