import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { AuthStore } from '../stores/types.js'

/**
 * Gives `@fastify/rate-limit` the plugin's store, so the per-IP limit is counted where every
 * other limit is: in memory for one process, in the same Redis (same prefix, same timeout, same
 * 503 when it is away) for many instances.
 *
 * `@fastify/rate-limit` takes a store as a class it constructs itself, hence a class here.
 */
export function rateLimitStore (store: AuthStore): FastifyRateLimitStoreCtor {
  class PluginRateLimitStore implements FastifyRateLimitStore {
    readonly #prefix: string

    constructor (_options: unknown, prefix = 'ip:') {
      this.#prefix = prefix
    }

    incr (key: string, callback: (error: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number): void {
      store.hit(this.#prefix + key, timeWindow, Date.now()).then(
        ({ count, ttlMs }) => callback(null, { current: count, ttl: ttlMs }),
        (error: Error) => callback(error)
      )
    }

    // Typed as a route's options by @fastify/rate-limit; at run time it is the merged limit
    // options with the route under `routeInfo`.
    child (routeOptions: object): FastifyRateLimitStore {
      // A route with a limit of its own counts apart from the others.
      const { method, url } = (routeOptions as { routeInfo?: { method?: unknown, url?: unknown } }).routeInfo ?? {}
      return new PluginRateLimitStore(routeOptions, `${this.#prefix}${String(method)} ${String(url)}:`)
    }
  }
  return PluginRateLimitStore
}
