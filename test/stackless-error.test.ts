import t from 'tap'
import { TokenRejectedError } from '../lib/tokens/token-service.js'
import { StacklessError } from '../lib/util/stackless-error.js'

/*
 * Errors that answer a request rather than report a fault are raised for every request of a
 * flood (a forged token, a full hashing queue): they capture no stack trace, and leave the
 * process's stack limit as it was for every other error.
 */

t.test('a token that did not verify is refused without a stack trace', async (t) => {
  const before = Error.stackTraceLimit
  const error = new TokenRejectedError('expired')
  t.type(error, Error)
  t.equal(error.reason, 'expired')
  t.equal(error.stack, 'TokenRejectedError: The access token expired', 'its name and message, no frames')
  t.equal(Error.stackTraceLimit, before)
  t.match(new Error('a fault').stack, /\n\s+at /, 'other errors keep their frames')
})

t.test('StacklessError keeps its message and is an Error', async (t) => {
  const error = new StacklessError('m')
  t.type(error, Error)
  t.equal(error.message, 'm')
  t.equal(error.stack, 'Error: m')
})
