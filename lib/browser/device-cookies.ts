import { randomBytes } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { signerFactory } from '@fastify/cookie'
import { DEVICE_COOKIE } from '../options/browser-sessions.js'
import { accountKey } from '../throttle/keys.js'
import type { Device } from '../throttle/login-throttle.js'
import { asksForCookie } from './browser-sessions.js'
import { readCookie, writeCookie } from './cookie-jar.js'

// accountKey . device id (128 random bits), both base64url.
const VALUE = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$/

/** Device cookies on browser logins. */
export interface DeviceCookies {
  /**
   * The device of a browser login of `username`: the one its valid cookie names for this
   * account, or a new one; `undefined` for a request that is not a browser session's.
   */
  forLogin: (request: FastifyRequest, username: string) => Device | undefined
  /** Sets the device's cookie after a successful login, for `knownSourceTtl`. */
  remember: (reply: FastifyReply, device: Device) => void
}

/** What device cookies are made with. */
export interface DeviceCookiesDeps {
  /** The browser-session signal header; only requests that send it take part. */
  header: string
  /** The HMAC key that signs the cookies. */
  secret: Buffer
  /** Milliseconds a device stays known after a login: the cookie's lifetime too. */
  knownSourceTtl: number
  caseSensitiveUsernames: boolean
}

/**
 * OWASP "Slow down online guessing attacks with device cookies": after a successful login the
 * browser gets a cookie, signed with HMAC-SHA256 (@fastify/cookie's signer), that names the
 * account (its throttle key, not the username) and a random device id. A later login of that
 * account presenting it is a known source for the login throttle. A forged, altered or other
 * account's cookie is simply no device: the login goes on as from an unknown source.
 */
export function createDeviceCookies ({ header, secret, knownSourceTtl, caseSensitiveUsernames }: DeviceCookiesDeps): DeviceCookies {
  const signer = signerFactory(secret, 'sha256')
  const maxAge = Math.floor(knownSourceTtl / 1000)

  function presented (request: FastifyRequest, account: string): string | undefined {
    const cookie = readCookie(request, DEVICE_COOKIE)
    if (typeof cookie !== 'string') return undefined
    const { valid, value } = signer.unsign(cookie)
    const match = valid ? VALUE.exec(value as string) : null
    return match?.[1] === account ? match[2] : undefined
  }

  return {
    forLogin (request, username) {
      if (!asksForCookie(request, header)) return undefined
      const account = accountKey(username, caseSensitiveUsernames)
      const id = presented(request, account)
      return id === undefined ? { account, id: randomBytes(16).toString('base64url'), presented: false } : { account, id, presented: true }
    },

    remember (reply, { account, id }) {
      writeCookie(reply, DEVICE_COOKIE, signer.sign(`${account}.${id}`), maxAge)
    }
  }
}
