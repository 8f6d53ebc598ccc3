/**
 * Whether a value that may come synchronously is a promise instead. The hot path of
 * `authenticate` stays synchronous wherever it can: a token seen before, a store that answers
 * from memory.
 */
export function isPromise<T> (value: T | Promise<T>): value is Promise<T> {
  // The values tested are claims (from JSON, which holds no functions), store answers or what
  // a listener returned: a `then` method is only ever a promise's.
  return typeof (value as { then?: unknown } | undefined)?.then === 'function'
}
