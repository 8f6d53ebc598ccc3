#!/usr/bin/env node
import { runCli } from './cli.js'

/* c8 ignore next 3 -- the wiring to the real process; test/cli.test.ts runs the built binary */
runCli(process.argv.slice(2), process).then((code) => {
  process.exitCode = code
})
