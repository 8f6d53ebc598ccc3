import type { FastifyRequest } from 'fastify'
import { createHash } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'

/*
 * What the throttles count under: an account (a normalised username, or a client_id) and a
 * source (the client's network address). Both are bounded in length and hold no `{` or `}`,
 * so they fit a Redis key and its Cluster hash tag whatever a client sends.
 */

/** A short, fixed-length digest: bounded keys, and no usernames in the store's key names. */
function digest (value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22)
}

/**
 * The key of a username's login counts and known sources. Spellings of one name share it:
 * Unicode NFKC folds compatibility forms (fullwidth `ａｌｉｃｅ`, ligatures, the Kelvin sign),
 * and case is folded too unless the host's usernames are case-sensitive. Otherwise `Alice`,
 * `ALICE` and `alice` — one account for a `findUser` that ignores case — would each get a
 * fresh allowance of guesses.
 */
export function accountKey (username: string, caseSensitive: boolean): string {
  const compatible = username.normalize('NFKC')
  // Lower-casing can leave a string that NFKC would write otherwise (e.g. a dotted capital I).
  return digest(caseSensitive ? compatible : compatible.toLowerCase().normalize('NFKC'))
}

/** The key of a `client_id`'s failed authentications: bounded, whatever id a client sends. */
export function clientKey (clientId: string): string {
  return digest(clientId)
}

/**
 * Expands an IPv6 address (already checked by `isIPv6`) and keeps its first 64 bits: one
 * customer gets a whole /64 (RFC 6177), and could use a new address of it for every request.
 */
function ipv6Prefix (address: string): string {
  // A zone (`fe80::1%eth0`) names a link of this host, not another source.
  const halves = (address.split('%', 1)[0] as string).split('::')
  const groupsOf = (half: string | undefined): string[] => half === undefined || half === '' ? [] : half.split(':')
  const left = groupsOf(halves[0])
  const right = groupsOf(halves[1])
  const groups = halves.length === 2 ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left
  return groups.slice(0, 4).map((group) => group.toLowerCase().replace(/^0+(?=.)/, '')).join(':') + '::/64'
}

/**
 * The source of an address, as the throttles count it: an IPv4 address whole, an IPv4-mapped
 * IPv6 address as its IPv4 address, any other IPv6 address by its /64. `undefined` when `ip` is
 * not an IP address.
 */
export function sourceOfAddress (ip: string): string | undefined {
  if (isIPv4(ip)) return ip
  if (!isIPv6(ip)) return undefined
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped !== null) return mapped[1]
  return ipv6Prefix(ip)
}

/**
 * The source of a request. `request.ip` comes from `X-Forwarded-For` when the host trusts a
 * proxy; should that not be an IP address (a broken or bypassed proxy passing on what the
 * client wrote), the socket's address counts instead, so a client cannot choose its key.
 */
export function sourceOf (request: FastifyRequest): string {
  return sourceOfAddress(request.ip) ?? sourceOfAddress(String(request.socket.remoteAddress)) ?? 'unknown'
}
