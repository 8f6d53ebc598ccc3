import { randomBytes } from 'node:crypto'
import { DEFAULTS } from './defaults.js'
import { fail, objectOrFalse, wholeNumber } from './checks.js'
import { checkSecretStrength } from './keys.js'
import type { BrowserSessionOptions, WindowLimit } from './types.js'

/** Browser sessions as the parts are built from them. */
export interface ResolvedBrowserSessions {
  /** The signal header, lower case. */
  header: string
  /** Origins besides the server's own that may rely on the cookie. */
  origins: ReadonlySet<string>
  cookieName: string
  /** Device cookies, or `false` when off (by the option, or because the per-username limit is off). */
  device: { secret: Buffer, lockout: Required<WindowLimit> } | false
}

/*
 * Headers a cross-site page can send without a CORS preflight (the CORS-safelisted request
 * headers, Fetch §4.1), and headers no script may set (Fetch's forbidden request-header names,
 * every one of them): neither can prove that a request comes from the app. A browser drops a
 * forbidden header from a page's `fetch` without an error, so the server would see no signal and
 * answer the page's login with the refresh token in the JSON body.
 */
const UNFIT_HEADERS = new Set([
  'accept', 'accept-language', 'content-language', 'content-type', 'range', 'authorization',
  'accept-charset', 'accept-encoding', 'access-control-request-headers', 'access-control-request-method', 'connection',
  'content-length', 'cookie', 'cookie2', 'date', 'dnt', 'expect', 'host', 'keep-alive', 'origin', 'referer', 'set-cookie',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'via'
])
const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/

function checkHeader (value: unknown): string {
  if (value === undefined) return DEFAULTS.browserSessionOptions.header
  if (typeof value !== 'string' || !HEADER_NAME.test(value.toLowerCase())) fail('browserSessions.header', 'must be a header name')
  const header = value.toLowerCase()
  if (UNFIT_HEADERS.has(header) || header.startsWith('sec-') || header.startsWith('proxy-')) {
    fail('browserSessions.header', `cannot be "${header}": a cross-site page can send it without a CORS preflight, or no script can set it`)
  }
  return header
}

function checkOrigins (value: unknown): ReadonlySet<string> {
  if (value === undefined) return new Set()
  if (!Array.isArray(value)) fail('browserSessions.origins', 'must be an array of origins such as "https://app.example.com"')
  for (const origin of value) {
    let url: URL | undefined
    try {
      url = new URL(origin as string)
    } catch {}
    // An origin is scheme, host and port: nothing else, as a browser writes it in `Origin`.
    if (url === undefined || !/^https?:$/.test(url.protocol) || url.origin !== origin) {
      fail('browserSessions.origins', `has "${String(origin)}", which is not an origin such as "https://app.example.com"`)
    }
  }
  return new Set(value as string[])
}

/** The device cookie's name: `__Host-`, like the refresh cookie. */
export const DEVICE_COOKIE = '__Host-device'

function checkCookieName (value: unknown): string {
  if (value === undefined) return DEFAULTS.browserSessionOptions.cookieName
  // RFC 6265 §4.1.1 token; `__Host-` binds it to this host, on `Secure` and `Path=/`.
  if (typeof value !== 'string' || !/^__Host-[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value)) {
    fail('browserSessions.cookieName', 'must be a cookie name that starts with "__Host-"')
  }
  // Two cookies of one name are one cookie to the browser: each Set-Cookie would overwrite the
  // other, and the refresh token would be read as a device cookie (so device cookies never work).
  if (value === DEVICE_COOKIE) fail('browserSessions.cookieName', `cannot be "${DEVICE_COOKIE}", the device cookie's name`)
  return value
}

function checkDevice (options: BrowserSessionOptions, perUsername: boolean): ResolvedBrowserSessions['device'] {
  const on = options.deviceCookie ?? DEFAULTS.browserSessionOptions.deviceCookie
  if (typeof on !== 'boolean') fail('browserSessions.deviceCookie', 'must be true or false')
  const secret = options.deviceSecret
  if (secret !== undefined) {
    if (typeof secret !== 'string' && !Buffer.isBuffer(secret)) fail('browserSessions.deviceSecret', 'must be a string or a Buffer')
    checkSecretStrength('browserSessions.deviceSecret', Buffer.from(secret))
  }
  const lockout = options.deviceLockout
  if (lockout !== undefined && (typeof lockout !== 'object' || lockout === null)) fail('browserSessions.deviceLockout', 'must be an object')
  const defaults = DEFAULTS.browserSessionOptions.deviceLockout
  const rule = {
    max: wholeNumber('browserSessions.deviceLockout.max', lockout?.max, defaults.max),
    timeWindow: wholeNumber('browserSessions.deviceLockout.timeWindow', lockout?.timeWindow, defaults.timeWindow)
  }
  // A device cookie only ever helps against the per-username limit: without it there is nothing to do.
  if (!on || !perUsername) return false
  return { secret: secret === undefined ? randomBytes(32) : Buffer.from(secret), lockout: rule }
}

/**
 * Checks `browserSessions`; `refreshTokens` must be on (the cookie holds a refresh token), and
 * so must `findUser` (there is no token endpoint without it).
 */
export function checkBrowserSessions (value: unknown, refreshTokens: boolean, findUser: boolean, perUsername: boolean): ResolvedBrowserSessions | false {
  if (value === undefined || value === false) return false
  const options = value === true ? {} : objectOrFalse('browserSessions', value as BrowserSessionOptions) as BrowserSessionOptions
  if (!refreshTokens) fail('browserSessions', 'needs `refreshTokens` on: the cookie holds a refresh token')
  if (!findUser) fail('browserSessions', 'needs `findUser`: without it there is no token endpoint')
  return {
    header: checkHeader(options.header),
    origins: checkOrigins(options.origins),
    cookieName: checkCookieName(options.cookieName),
    device: checkDevice(options, perUsername)
  }
}
