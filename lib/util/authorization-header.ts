/** What `authorizationHeader` answers for a request with more than one `Authorization` header. */
export const DUPLICATE = Symbol('more than one Authorization header')

/**
 * The request's `Authorization` header, or `DUPLICATE` when it has more than one. Node keeps
 * only the first in `request.headers`; a second one is visible only in the raw list.
 */
export function authorizationHeader (rawHeaders: string[]): string | undefined | typeof DUPLICATE {
  let value: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    // The length first: this runs on every authenticated request, over every header.
    if (name.length === 13 && name.toLowerCase() === 'authorization') {
      if (value !== undefined) return DUPLICATE
      value = rawHeaders[i + 1] as string
    }
  }
  return value
}
