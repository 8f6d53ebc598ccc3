/*
 * How long a client may take to send its request, for the examples' Fastify servers.
 *
 * Fastify's `requestTimeout` defaults to 0: no limit. Node still closes a connection whose
 * headers take over a minute, but once they are in, a client that sends a `Content-Length` and
 * then its body a byte at a time, or not at all, keeps the connection, its socket and its file
 * descriptor for as long as it likes; a few thousand such connections from one machine, which
 * the per-address limits never see (no request is ever complete), and the server has none left.
 * Fastify's documentation asks for a `requestTimeout` on a server that no reverse proxy shields.
 */
import type { ServerOptions } from 'node:http'

/** The whole request (headers and body) must arrive within this, unless REQUEST_TIMEOUT says otherwise. */
const DEFAULT_REQUEST_TIMEOUT_SECONDS = 10

/**
 * Fastify options that close, with 408, a connection whose request has not fully arrived within
 * `seconds` (REQUEST_TIMEOUT; the default when unset or empty) of its first byte. Only the
 * receiving is timed: a login waiting for a hashing slot, or an idle keep-alive connection between
 * requests (Fastify's `keepAliveTimeout`), is not cut.
 */
export function requestTimeouts (seconds: string | number | undefined): { requestTimeout: number, http: ServerOptions } {
  const text = String(seconds ?? '').trim()
  const value = text === '' ? DEFAULT_REQUEST_TIMEOUT_SECONDS : /^\d{1,4}$/.test(text) ? Number(text) : 0
  if (value < 1 || value > 3600) throw new Error(`REQUEST_TIMEOUT: "${text}" is not a whole number of seconds from 1 to 3600`)
  const requestTimeout = value * 1000
  return {
    requestTimeout,
    // Node checks its connections against these every `connectionsCheckingInterval` (30 s by
    // default, so a 10 s limit would really be up to 40 s); the headers' own limit (60 s by
    // default) may not exceed the whole request's.
    http: { requestTimeout, headersTimeout: requestTimeout, connectionsCheckingInterval: 1000 }
  }
}
