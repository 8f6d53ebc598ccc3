import { InvalidOptionError } from '../errors.js'

/*
 * The checks every option reader shares: the plugin's options, the key entries and the stores'
 * factories. Each failure is an `InvalidOptionError` naming the option and what is wrong.
 */

/** Refuses option `name`, saying what is wrong with it. */
export function fail (name: string, problem: string): never {
  throw new InvalidOptionError(name, problem)
}

/** A whole number from `min` to `max`, or `fallback` when absent. */
export function wholeNumber (name: string, value: unknown, fallback: number, max = Number.MAX_SAFE_INTEGER, min = 1): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, `must be a whole number from ${min} to ${max}`)
  }
  return value
}

/** A non-empty string, or `undefined` when absent. */
export function optionalString (name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0) fail(name, 'must be a non-empty string')
  return value
}

/** A path starting with "/". */
export function path (name: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/')) fail(name, 'must be a path starting with "/"')
  return value
}

/** An object, `undefined` (the defaults) or `false` (off); `null` is a mistake, not "the defaults". */
export function objectOrFalse<T extends object> (name: string, value: T | false | undefined): T | false | undefined {
  if (value !== undefined && value !== false && (typeof value !== 'object' || value === null)) fail(name, 'must be an object or false')
  return value
}
