import { oauthError } from '../errors.js'
import type { Form } from '../grants/grant.js'

/** A parameter name as it may be echoed in a description: short and plain. */
function safeName (name: string): string {
  return /^[a-z_]{1,32}$/.test(name) ? name : 'a'
}

/**
 * Reads the form under the rules of RFC 6749 §3.2: a parameter sent without a value is
 * treated as omitted, and no parameter may be included more than once.
 */
export function readForm (body: unknown): Form {
  if (typeof body !== 'object' || body === null) {
    throw oauthError('invalid_request', 'The request body must be application/x-www-form-urlencoded')
  }
  const form: Record<string, string> = {}
  for (const [name, value] of Object.entries(body)) {
    if (Array.isArray(value)) throw oauthError('invalid_request', `The '${safeName(name)}' parameter is repeated`)
    if (typeof value === 'string' && value !== '') form[name] = value
  }
  return form
}
