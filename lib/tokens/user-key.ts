import { createHash } from 'node:crypto'
import { LruMap } from 'toad-cache'

// With revocable access tokens every request asks for its user's key: the recent ones are
// remembered rather than hashed on every request.
const userKeys = new LruMap<string>(10_000)

/**
 * The key under which the store groups a user's state: a hash of `sub`, so it fits a Redis hash
 * tag whatever characters the host's ids hold, and keeps ids out of Redis key names.
 */
export function userKeyOf (sub: string): string {
  let key = userKeys.get(sub)
  if (key === undefined) {
    key = createHash('sha256').update(sub).digest('base64url').slice(0, 22)
    userKeys.set(sub, key)
  }
  return key
}
