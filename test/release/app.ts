import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

/*
 * The consumer app scripts/release-check.js installs the packed tarball into; these tests run
 * only from there (`npm run release:check`).
 */

const app = process.env.RELEASE_APP
if (app === undefined) throw new Error('test/release runs from `npm run release:check`, which packs and installs the package (RELEASE_APP is not set)')

/** The temporary app, with the packed package installed in its node_modules. */
export const APP: string = app

/** This repository's package.json: the name to import, the version to expect. */
export const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string, version: string }

/** The environment for a child process: without tap's coverage and loader variables. */
export function childEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NODE_V8_COVERAGE|NODE_OPTIONS|_TAPJS|TAP)/.test(k)))
  return { ...env, ...extra }
}

/** Runs node on a file of the app, in the app, with arguments for the file; resolves its stdout. */
export async function runInApp (file: string, args: string[] = []): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(APP, file), ...args], { cwd: APP, env: childEnv(), encoding: 'utf8' })
  return stdout
}
