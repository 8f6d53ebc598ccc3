#!/usr/bin/env node
import { exitOnOutputError, runCli } from './cli.js'

/* c8 ignore next 4 -- the wiring to the real process; test/cli.test.ts runs the built binary */
exitOnOutputError(process, (code) => process.exit(code))
runCli(process.argv.slice(2), process).then((code) => {
  process.exitCode = code
})
