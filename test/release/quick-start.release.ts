import t from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { APP, childEnv } from './app.js'

/*
 * examples/quick-start.ts (the README's Quick start) as a user runs it: copied into an app that
 * installed the packed tarball, run with tsx, then a token from POST /token and GET /me with it.
 */

const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm')).href

t.test('the Quick start runs as written: a token for alice, then /me with it', async (t) => {
  copyFileSync(new URL('../../examples/quick-start.ts', import.meta.url), join(APP, 'quick-start.ts'))
  // PORT=0: the file listens on 3000 by default, which another process here may hold.
  const child = spawn(process.execPath, ['--import', tsx, 'quick-start.ts'], { cwd: APP, env: childEnv({ PORT: '0' }) })
  t.teardown(() => { child.kill() })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const lines: Array<{ msg?: string, level?: number }> = []
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk
      for (let i = buffered.indexOf('\n'); i !== -1; i = buffered.indexOf('\n')) {
        const line = JSON.parse(buffered.slice(0, i)) as { msg?: string, level?: number }
        buffered = buffered.slice(i + 1)
        lines.push(line)
        const listening = /^Server listening at (http:\/\/127\.0\.0\.1:\d+)$/.exec(line.msg ?? '')
        if (listening !== null) resolve(listening[1] as string)
      }
    })
    child.on('exit', (code) => reject(new Error(`quick-start.ts exited with ${code}: ${stderr}`)))
  })
  t.ok(lines.some((line) => line.level === 40 && /JWT_SECRET is not set/.test(line.msg ?? '')), 'it says it made up a secret')

  const token = await fetch(url + '/token', {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'alice-password' })
  })
  t.equal(token.status, 200)
  const { access_token: accessToken, token_type: tokenType } = await token.json() as { access_token: string, token_type: string }
  t.equal(tokenType, 'Bearer')

  const me = await fetch(url + '/me', { headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(me.status, 200)
  t.same(await me.json(), { user: 'alice', scope: ['profile'] })
  t.equal((await fetch(url + '/me')).status, 401, 'and not without the token')

  // A path typo with the password in the query, and a token in a query string: masked in the
  // 404's message and in every log line.
  const typo = await fetch(url + '/token/?grant_type=password&username=alice&password=typo-pw-7c1d', { method: 'POST' })
  t.equal(typo.status, 404)
  t.match(await typo.text(), 'password=[Redacted]')
  t.equal((await fetch(`${url}/me?access_token=${accessToken}`)).status, 401, 'a query token is no credential')
  const logged = await new Promise<string>((resolve) => { setTimeout(() => { resolve(JSON.stringify(lines)) }, 200) })
  t.ok(logged.includes('access_token=[Redacted]'), 'the request is logged, its token masked')
  t.notOk(logged.includes('typo-pw-7c1d') || logged.includes(accessToken.split('.')[2] as string), 'no password or token in the log')
})
