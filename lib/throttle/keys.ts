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
 * The eight groups of an IPv6 address (already checked by `isIPv6`), written out: lower case,
 * without leading zeros, a trailing dotted IPv4 part as its two groups. A zone (`fe80::1%eth0`)
 * names a link of this host, not another source, and is dropped.
 */
function ipv6Groups (address: string): string[] {
  let text = (address.split('%', 1)[0] as string).toLowerCase()
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number]
    text = text.slice(0, dotted.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16)
  }
  const halves = text.split('::')
  const groupsOf = (half: string | undefined): string[] => half === undefined || half === '' ? [] : half.split(':')
  const left = groupsOf(halves[0])
  const right = groupsOf(halves[1])
  const groups = halves.length === 2 ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left
  return groups.map((group) => group.replace(/^0+(?=.)/, ''))
}

/**
 * The source of an address, as the throttles count it: an IPv4 address whole; an IPv4-mapped
 * IPv6 address (::ffff:0:0/96, RFC 4291 §2.5.5.2) as its IPv4 address, however it is written
 * (`::ffff:192.0.2.1`, `::ffff:c000:201`, zeros written out), so a proxy that writes the hex
 * form does not put every IPv4 client in one bucket; any other IPv6 address by its /64: one
 * customer gets a whole /64 (RFC 6177), and could use a new address of it for every request.
 * `undefined` when `ip` is not an IP address.
 */
export function sourceOfAddress (ip: string): string | undefined {
  if (isIPv4(ip)) return ip
  if (!isIPv6(ip)) return undefined
  const groups = ipv6Groups(ip)
  if (groups.slice(0, 5).every((group) => group === '0') && groups[5] === 'ffff') {
    const [high, low] = groups.slice(6).map((group) => parseInt(group, 16)) as [number, number]
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
  }
  return groups.slice(0, 4).join(':') + '::/64'
}

/**
 * The source of a request. `request.ip` comes from `X-Forwarded-For` when the host trusts a
 * proxy; should that not be an IP address (a broken or bypassed proxy passing on what the
 * client wrote), the socket's address counts instead, so a client cannot choose its key.
 */
export function sourceOf (request: FastifyRequest): string {
  return sourceOfAddress(request.ip) ?? sourceOfAddress(String(request.socket.remoteAddress)) ?? 'unknown'
}
