import t from 'tap'
import { spawn, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { buildServer, defaultIssuer, start } from '../examples/server.js'
import { childEnv, FORM, freePort, form, forge, validClaims, VALID_HEADER } from './helper.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const SECRET = 'example-test-secret-2f9c4e1a7b3d8f0e6c5a'
const QUIET = { LOG_LEVEL: 'silent' }

function decode (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
}

/** Builds a server while capturing what its logger writes to stdout. */
async function buildCapturing (env: Record<string, string>): Promise<{ app: Awaited<ReturnType<typeof buildServer>>, lines: string[] }> {
  const lines: string[] = []
  const original = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true }) as typeof process.stdout.write
  try {
    return { app: await buildServer(env), lines }
  } finally {
    process.stdout.write = original
  }
}

async function tokenFor (app: Awaited<ReturnType<typeof buildServer>>, username: string, password: string) {
  return app.inject({ method: 'POST', url: '/token', headers: FORM, payload: form({ grant_type: 'password', username, password }) })
}

t.test('demo users, routes and messages', async (t) => {
  const app = await buildServer({ ...QUIET, JWT_SECRET: SECRET })
  t.teardown(() => app.close())

  const pub = await app.inject('/public')
  t.equal(pub.statusCode, 200)

  const user = await tokenFor(app, 'user1', 'password1')
  t.equal(user.statusCode, 200)
  const userToken = user.json().access_token
  t.equal(user.json().scope, 'profile')

  const protectedRes = await app.inject({ url: '/protected', headers: { authorization: `Bearer ${userToken}` } })
  t.same(protectedRes.json(), { message: 'Hello, authenticated user!' })
  const me = await app.inject({ url: '/me', headers: { authorization: `Bearer ${userToken}` } })
  t.same(me.json(), { sub: 'user1', scope: 'profile' })
  const adminDenied = await app.inject({ url: '/admin', headers: { authorization: `Bearer ${userToken}` } })
  t.equal(adminDenied.statusCode, 403)
  t.match(adminDenied.headers['www-authenticate'], /error="insufficient_scope"/)

  const admin = await tokenFor(app, 'admin', 'admin-password')
  t.equal(admin.json().scope, 'profile admin')
  const adminOk = await app.inject({ url: '/admin', headers: { authorization: `Bearer ${admin.json().access_token}` } })
  t.equal(adminOk.statusCode, 200)

  const disabled = await tokenFor(app, 'disabled-user', 'password1')
  t.equal(disabled.statusCode, 400)
  t.equal(disabled.json().error, 'invalid_grant')
  t.equal((await app.inject('/protected')).statusCode, 401)
})

t.test('JWT_ISSUER, JWT_AUDIENCE and ACCESS_TOKEN_TTL', async (t) => {
  const defaults = await buildServer({ ...QUIET, JWT_SECRET: SECRET })
  t.teardown(() => defaults.close())
  const claims = decode((await tokenFor(defaults, 'user1', 'password1')).json().access_token)
  t.type(claims.iss, 'string', 'iss is always present')
  t.ok(claims.aud, 'aud is always present')
  t.equal((claims.exp as number) - (claims.iat as number), 900)

  const app = await buildServer({ ...QUIET, JWT_SECRET: SECRET, JWT_ISSUER: 'https://issuer.test', JWT_AUDIENCE: 'api.test', ACCESS_TOKEN_TTL: '60' })
  t.teardown(() => app.close())
  const res = await tokenFor(app, 'user1', 'password1')
  t.equal(res.json().expires_in, 60)
  const custom = decode(res.json().access_token)
  t.equal(custom.iss, 'https://issuer.test')
  t.equal(custom.aud, 'api.test')
  t.equal((custom.exp as number) - (custom.iat as number), 60)

  // A token for another audience, signed with the right secret, is refused.
  const foreign = forge(VALID_HEADER, validClaims({ iss: 'https://issuer.test', aud: 'other' }), SECRET)
  const refused = await app.inject({ url: '/protected', headers: { authorization: `Bearer ${foreign}` } })
  t.equal(refused.statusCode, 401)
})

t.test('JWT_SECRET signs the tokens; unset, a random one is used with a warning', async (t) => {
  const app = await buildServer({ ...QUIET, JWT_SECRET: SECRET, JWT_ISSUER: 'i', JWT_AUDIENCE: 'a' })
  t.teardown(() => app.close())
  const handMade = forge(VALID_HEADER, validClaims({ iss: 'i', aud: 'a' }), SECRET)
  t.equal((await app.inject({ url: '/protected', headers: { authorization: `Bearer ${handMade}` } })).statusCode, 200)

  const { app: random, lines } = await buildCapturing({ LOG_LEVEL: 'warn', JWT_ISSUER: 'i', JWT_AUDIENCE: 'a' })
  t.teardown(() => random.close())
  t.ok(lines.some((l) => l.includes('JWT_SECRET is not set')), 'warns about the random secret')
  t.equal((await random.inject({ url: '/protected', headers: { authorization: `Bearer ${handMade}` } })).statusCode, 401)

  await t.rejects(buildServer({ ...QUIET, JWT_SECRET: 'too-short' }), { code: 'FST_TOKEN_AUTH_WEAK_SECRET' })
})

t.test('throttling is on by default; RATE_LIMIT=off turns it off with a warning', async (t) => {
  const on = await buildServer({ ...QUIET, JWT_SECRET: SECRET })
  t.teardown(() => on.close())
  const statuses: number[] = []
  for (let i = 0; i < 7; i++) statuses.push((await tokenFor(on, 'user1', 'wrong')).statusCode)
  t.same(statuses.slice(0, 5), [400, 400, 400, 400, 400])
  t.equal(statuses[5], 429)

  const { app: off, lines } = await buildCapturing({ LOG_LEVEL: 'warn', JWT_SECRET: SECRET, RATE_LIMIT: 'off' })
  t.teardown(() => off.close())
  t.ok(lines.some((l) => l.includes('"level":40') && l.includes('RATE_LIMIT=off')), 'logged as a warning')
  for (let i = 0; i < 35; i++) {
    const res = await off.inject({ method: 'POST', url: '/token', headers: FORM, payload: 'grant_type=password' })
    t.equal(res.statusCode, 400, 'never 429')
  }
  t.equal((await tokenFor(off, 'user1', 'password1')).statusCode, 200)
})

t.test('THREAD_POOL_PRIORITY: the threads that hash run at 10 unless it says otherwise', { skip: process.platform !== 'linux' ? 'per-thread priorities are a Linux feature' : os.getPriority() !== 0 ? 'this process runs under nice: priorities are not read from 0' : false }, async (t) => {
  const poolSize = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
  const threadsAt = (priority: number): number => readdirSync('/proc/self/task').filter((tid) => os.getPriority(Number(tid)) === priority).length
  const app = await buildServer({ ...QUIET, JWT_SECRET: SECRET })
  await app.close()
  t.equal(threadsAt(10), poolSize, 'the pool\'s threads, at 10 by default')
  const lower = await buildServer({ ...QUIET, JWT_SECRET: SECRET, THREAD_POOL_PRIORITY: '12' })
  await lower.close()
  t.equal(threadsAt(12), poolSize)
  t.equal(os.getPriority(), 0, 'the event loop\'s thread is left as it was')
  await t.rejects(buildServer({ ...QUIET, JWT_SECRET: SECRET, THREAD_POOL_PRIORITY: 'low' }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION' })
})

t.test('the pages with a login form, /app/ and /docs/, cannot be framed and carry a same-origin policy', async (t) => {
  const app = await buildServer({ ...QUIET, JWT_SECRET: SECRET })
  t.teardown(() => app.close())
  for (const url of ['/app/', '/docs/', '/docs/static/swagger-initializer.js']) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, url)
    const policy = String(res.headers['content-security-policy'])
    t.match(policy, /default-src 'self'/, `${url}: same origin only`)
    t.match(policy, /frame-ancestors 'none'/, `${url}: framed by no page`)
    t.notMatch(policy, /upgrade-insecure-requests/, `${url}: an http server's calls stay http`)
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.equal(res.headers['referrer-policy'], 'no-referrer')
  }
})

t.test('at LOG_LEVEL=trace, a request Node cannot parse is logged without its raw bytes', async (t) => {
  const lines: string[] = []
  const original = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true }) as typeof process.stdout.write
  t.teardown(() => { process.stdout.write = original })
  const app = await buildServer({ LOG_LEVEL: 'trace', JWT_SECRET: SECRET })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as net.AddressInfo
  // A header name with a space: Node's parser refuses it, with the bytes read so far on the error.
  const socket = net.connect(port, '127.0.0.1')
  socket.end('POST /token HTTP/1.1\r\nAuthorization: Bearer RAW-TOKEN\r\nCookie: __Host-refresh-token=RAW-COOKIE\r\n' +
    'Bad Header: x\r\nContent-Length: 20\r\n\r\npassword=RAW-SECRET1')
  socket.resume()
  await once(socket, 'close')
  await app.close()
  process.stdout.write = original
  const clientError = lines.find((line) => line.includes('"client error"'))
  t.match(clientError, /"rawPacket":"\[Redacted\]"/, 'the client error is logged, its raw bytes redacted')
  const raw = Buffer.from('RAW-').toJSON().data.join(',')
  t.notOk(lines.some((line) => line.includes('RAW-') || line.includes(raw)), 'no line holds the request\'s bytes')
})

t.test('start() listens on HOST and PORT', async (t) => {
  const app = await start({ ...QUIET, JWT_SECRET: SECRET, HOST: '127.0.0.1', PORT: '0' })
  t.teardown(() => app.close())
  const address = app.server.address()
  t.ok(address !== null && typeof address === 'object' && address.address === '127.0.0.1')
})

t.test('without JWT_ISSUER the issuer is where the server listens', async (t) => {
  t.equal(defaultIssuer({}), 'http://127.0.0.1:3000')
  t.equal(defaultIssuer({ PORT: '8080' }), 'http://127.0.0.1:8080')
  t.equal(defaultIssuer({ HOST: 'localhost', PORT: '8080' }), 'http://localhost:8080')
  t.equal(defaultIssuer({ HOST: '::1' }), 'http://[::1]:3000', 'an IPv6 address in brackets')
  t.equal(defaultIssuer({ HOST: '0.0.0.0', PORT: '8080' }), 'http://127.0.0.1:8080', 'every address: the loopback one')
  t.equal(defaultIssuer({ HOST: '::', PORT: '8080' }), 'http://127.0.0.1:8080')
  t.equal(defaultIssuer({ HOST: '' }), 'http://127.0.0.1:3000', 'an empty HOST: every address too')
  t.equal(defaultIssuer({ PORT: '0' }), undefined, 'a port chosen at listen time cannot be named before')

  // A client that discovers the server on the port it listens on (RFC 8414 §3) is led back to it.
  const port = await freePort()
  const app = await start({ ...QUIET, JWT_SECRET: SECRET, HOST: '127.0.0.1', PORT: String(port) })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${port}`
  const metadata = await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json() as Record<string, string>
  t.equal(metadata.issuer, base, 'the metadata names the issuer the client discovered')
  t.equal(metadata.token_endpoint, `${base}/token`)
  const answer = await fetch(metadata.token_endpoint as string, { method: 'POST', headers: FORM, body: form({ grant_type: 'password', username: 'user1', password: 'password1' }) })
  t.equal(answer.status, 200, 'its token endpoint is this server')
  t.equal(decode(((await answer.json()) as { access_token: string }).access_token).iss, base)

  const { app: anyPort, lines } = await buildCapturing({ LOG_LEVEL: 'warn', JWT_SECRET: SECRET, PORT: '0' })
  t.teardown(() => anyPort.close())
  t.ok(lines.some((l) => l.includes('PORT=0 and JWT_ISSUER is not set')), 'PORT=0 warns that the issuer names port 3000')
  t.equal((await anyPort.inject('/.well-known/oauth-authorization-server')).json().issuer, 'http://127.0.0.1:3000')
  const { app: named, lines: quiet } = await buildCapturing({ LOG_LEVEL: 'warn', JWT_SECRET: SECRET, PORT: '0', JWT_ISSUER: 'https://auth.example.com' })
  t.teardown(() => named.close())
  t.notOk(quiet.some((l) => l.includes('PORT=0')), 'no warning when JWT_ISSUER names the issuer')
  t.equal((await named.inject('/.well-known/oauth-authorization-server')).json().token_endpoint, 'https://auth.example.com/token')
})

let curl = true
try {
  execFileSync('curl', ['--version'], { stdio: 'ignore' })
} catch {
  curl = false
}

t.test('npm start, then the tutorial\'s two curl commands', { skip: curl ? false : 'curl is not installed' }, async (t) => {
  const port = String(30000 + Math.floor(Math.random() * 20000))
  // --ignore-scripts skips `prestart` (the build): the suite runs after `npm run build`, and a
  // rebuild here would empty dist/ under the test files reading it in parallel. That `npm start`
  // builds first is checked in a copy of the repository (test/release/npm-start.release.ts).
  const child = spawn('npm', ['start', '--silent', '--ignore-scripts'], {
    cwd: root,
    // Not coverage-tracked: tsx's source maps would be merged with tap's own for examples/.
    // The tutorial's server keeps its state in memory: the suite's REDIS_URL and DATABASE_URL stay out.
    env: { ...Object.fromEntries(Object.entries(childEnv()).filter(([k]) => !/^(REDIS_|STORE_DATABASE_)/.test(k))), PORT: port, JWT_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  t.teardown(() => {
    try { process.kill(-(child.pid as number), 'SIGTERM') } catch {}
  })
  let output = ''
  let errors = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { errors += chunk })
  const deadline = setTimeout(() => child.kill(), 20000)
  while (!output.includes('Server listening')) {
    await Promise.race([once(child.stdout, 'data'), once(child, 'exit')])
    if (child.exitCode !== null) break
  }
  clearTimeout(deadline)
  t.match(output, /Server listening at http:\/\/127\.0\.0\.1:/, errors === '' ? 'the server listens' : `the server listens (stderr: ${errors.slice(0, 500)})`)

  const tokenJson = execFileSync('curl', ['-s', '-X', 'POST', `http://localhost:${port}/token`,
    '-H', 'accept: application/json',
    '-H', 'Content-Type: application/x-www-form-urlencoded',
    '-d', 'grant_type=password&username=user1&password=password1'], { encoding: 'utf8' })
  const token = JSON.parse(tokenJson).access_token
  t.type(token, 'string')
  const hello = execFileSync('curl', ['-s', '-X', 'GET', `http://localhost:${port}/protected`,
    '-H', 'accept: application/json',
    '-H', `Authorization: Bearer ${token}`], { encoding: 'utf8' })
  t.same(JSON.parse(hello), { message: 'Hello, authenticated user!' })
  const metadata = JSON.parse(execFileSync('curl', ['-s', `http://127.0.0.1:${port}/.well-known/oauth-authorization-server`], { encoding: 'utf8' }))
  t.equal(metadata.token_endpoint, `http://127.0.0.1:${port}/token`, 'PORT is the port its metadata names')
  t.notMatch(output, token, 'the token never reaches the log')
})
