import { LruMap } from 'toad-cache'
import { InvalidOptionError, oauthError } from './errors.js'

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
export const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/

// A requested scope far past this is no list of scopes an app grants.
const MAX_SCOPE_LENGTH = 1024

/**
 * A requested scope (RFC 6749 §3.3: a space-delimited list of scope-tokens) as a list without
 * repeats; `undefined` when none was requested. Throws `invalid_scope` when it is malformed.
 */
export function parseScope (scope: string | undefined): string[] | undefined {
  if (scope === undefined) return undefined
  const list = scope.length > MAX_SCOPE_LENGTH ? [] : scope.split(' ')
  if (list.length === 0 || !list.every((s) => SCOPE_TOKEN.test(s))) throw oauthError('invalid_scope', 'The scope is malformed')
  return [...new Set(list)]
}

const NO_SCOPES: readonly string[] = Object.freeze([])

/**
 * The scopes `findUser` gave a user, checked: a host that returned a string (`'admin-ro'`) would
 * otherwise grant every scope it contains as a substring, or, with none requested, one scope per
 * character. Anything but a list of strings is the host's error, a 500, never a grant.
 */
export function userScopes (user: { scopes?: readonly string[] | undefined }): readonly string[] {
  const { scopes } = user
  if (scopes === undefined) return NO_SCOPES
  if (!Array.isArray(scopes) || !scopes.every((s: unknown) => typeof s === 'string')) {
    throw new InvalidOptionError('findUser', 'returned a user whose scopes is not an array of strings')
  }
  return scopes
}
// A client sends the same token, so the same claim, on every call: its list is made once. The
// few scope combinations an app grants fit many times over.
const scopeLists = new LruMap<readonly string[]>(1000)

/** The `scope` claim of a verified token as a frozen list, shared by every request that carries it. */
export function scopeList (scope: string | undefined): readonly string[] {
  if (scope === undefined || scope === '') return NO_SCOPES
  let list = scopeLists.get(scope)
  if (list === undefined) {
    list = Object.freeze(scope.split(' '))
    scopeLists.set(scope, list)
  }
  return list
}
