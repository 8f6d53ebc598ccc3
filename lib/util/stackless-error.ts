/**
 * An error that captures no stack trace: for errors that are answers rather than faults (a
 * refused login, a token that did not verify), raised for each request of a flood, where a
 * stack costs each one several microseconds for frames that only point into the plugin.
 * `stack` is then the name and message alone.
 */
export class StacklessError extends Error {
  constructor (message: string) {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = limit
  }
}
