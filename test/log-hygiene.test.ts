import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyReply, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import { buildServer } from '../examples/server.js'
import { bearer, buildApp, captureLogs, demoUsers, tokenRequest, forge, validClaims, SECRET, VALID_HEADER, CHEAP } from './helper.js'
import tokenAuth, { hashPassword, notFoundHandler, requestLogSerializer, type UserRecord } from '../lib/index.js'

/*
 * Log hygiene: a whole session, logged at trace level into memory, must not leave a password,
 * a password hash, an access or refresh token or a signing secret in any line (OWASP Logging
 * Cheat Sheet: never log session tokens, passwords, secrets).
 */

const PASSWORDS = { user: 'Tr0ub4dor-user-7c1f', admin: 'Tr0ub4dor-admin-2e9b', legacy: 'password1' }
const WRONG = ['wrong-guess-5a1d', 'wrong-guess-8b3e', 'Tr0ub4dor-user-7c1g']
const CLIENT_SECRET = 'client-secret-4f7a2c9e1b'
// passlib, $2b$, cost 4 (see bcrypt-migration.test.ts): 'password1'.
const LEGACY_HASH = '$2b$04$nuP.554qX4ckptRuNh4Z7eJ5uYQSXeFrH350wig3cNzT4xWDH9r1K'

/** The README's logger setting: headers redacted, credentials in query strings masked. */
const RECOMMENDED = { level: 'trace', redact: ['req.headers.authorization', 'req.headers.cookie'], serializers: { req: requestLogSerializer } }

/** Request logs with every header, the way many hosts configure them, plus the README's setting. */
const HEADER_LOGGING = {
  ...RECOMMENDED,
  serializers: { req: (req: FastifyRequest) => ({ ...requestLogSerializer(req), headers: req.headers }) }
}

interface Session {
  lines: string[]
  secrets: string[]
}

/** Runs a session through the plugin and returns every log line and every secret it handled. */
async function session (t: Test, logger: Record<string, unknown>): Promise<Session> {
  const { stream, lines } = captureLogs()
  const users = new Map<string, UserRecord>([
    // An outdated (cheap) hash, so the login also hands a new hash to onPasswordRehash.
    ['user1', { username: 'user1', passwordHash: await hashPassword(PASSWORDS.user, CHEAP), scopes: ['profile'] }],
    ['admin', { username: 'admin', passwordHash: await hashPassword(PASSWORDS.admin, CHEAP), scopes: ['profile', 'admin'] }],
    ['legacy', { username: 'legacy', passwordHash: LEGACY_HASH, scopes: ['profile'] }],
    ['disabled', { username: 'disabled', passwordHash: await hashPassword(PASSWORDS.user, CHEAP), disabled: true }]
  ])
  const secrets = [...Object.values(PASSWORDS), ...WRONG, CLIENT_SECRET, SECRET, ...[...users.values()].map((u) => u.passwordHash)]
  let rehashed = 0
  let allRehashed!: () => void
  const rehashing = new Promise<void>((resolve) => { allRehashed = resolve })
  const app = await buildApp(t, {
    server: { logger: { ...logger, stream } },
    plugin: {
      password: { memoryCost: 512, timeCost: 2, parallelism: 1 },
      loginThrottle: { perUsernameAndIp: { max: 3 } },
      clients: [{ id: 'web' }, { id: 'service', secretHash: await hashPassword(CLIENT_SECRET, CHEAP) }],
      refreshTokens: true,
      revocableAccessTokens: true,
      findUser: (name) => users.get(name) ?? null,
      onPasswordRehash: (user, newHash) => {
        if (++rehashed === 3) allRehashed()
        secrets.push(newHash)
        user.passwordHash = newHash
      }
    }
  })
  const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` })
  const grant = (username: string, password: string, headers: Record<string, string> = basic('service', CLIENT_SECRET)) =>
    tokenRequest(app, { grant_type: 'password', username, password }, headers)

  // Logins that work: with the client secret in a Basic header, then in the body; a legacy hash.
  const user = await grant('user1', PASSWORDS.user)
  t.equal(user.statusCode, 200)
  const admin = await tokenRequest(app, { grant_type: 'password', username: 'admin', password: PASSWORDS.admin, client_id: 'service', client_secret: CLIENT_SECRET })
  t.equal(admin.statusCode, 200)
  const legacy = await grant('legacy', PASSWORDS.legacy, { ...basic('web', '') })
  t.equal(legacy.statusCode, 200)
  const tokens = [user, admin, legacy].map((res) => res.json().access_token as string)
  secrets.push(...tokens, ...tokens.map((token) => token.split('.')[2] as string))
  const refreshTokens = [user, admin, legacy].map((res) => res.json().refresh_token as string)
  /** A refresh token and each of its parts: the family id and the secret are secrets too. */
  const keep = (...found: string[]) => { for (const token of found) secrets.push(token, ...token.split('.').slice(1)) }
  keep(...refreshTokens)

  // Protected calls: allowed, refused for scope, refused tokens.
  t.equal((await app.inject({ url: '/protected', headers: bearer(tokens[0] as string) })).statusCode, 200)
  t.equal((await app.inject({ url: '/admin', headers: bearer(tokens[0] as string) })).statusCode, 403)
  t.equal((await app.inject({ url: '/admin', headers: bearer(tokens[1] as string) })).statusCode, 200)
  const tampered = (tokens[0] as string).slice(0, -3) + 'AAA'
  const expired = forge(VALID_HEADER, validClaims({ iat: 1, exp: 2 }))
  secrets.push(tampered, expired)
  t.equal((await app.inject({ url: '/protected', headers: bearer(tampered) })).statusCode, 401)
  t.equal((await app.inject({ url: '/protected', headers: bearer(expired) })).statusCode, 401)
  t.equal((await app.inject({ url: '/protected', headers: { authorization: `Bearer ${tokens[0] as string} extra` } })).statusCode, 400)
  t.equal((await app.inject({ url: `/protected?access_token=${tokens[0] as string}` })).statusCode, 401)

  // Refresh and revocation: a rotation, a retry, the retired token (reuse ends the family), another
  // client's token, a damaged one; revoking a refresh token, an access token, and a token sent in
  // the query string instead of the body.
  const service = basic('service', CLIENT_SECRET)
  const refresh = (token: string, headers: Record<string, string> = service) => tokenRequest(app, { grant_type: 'refresh_token', refresh_token: token }, headers)
  const revoke = (token: string, headers: Record<string, string> = service) => tokenRequest(app, { token }, headers, '/revoke')
  const rotated = await refresh(refreshTokens[0] as string)
  t.equal(rotated.statusCode, 200)
  keep(rotated.json().refresh_token, rotated.json().access_token)
  // The rotated token again, within the retry grace: a fresh pair, and the successor retired.
  const retried = await refresh(refreshTokens[0] as string)
  t.equal(retried.statusCode, 200, 'a retry')
  keep(retried.json().refresh_token, retried.json().access_token)
  t.equal((await refresh(rotated.json().refresh_token)).json().error, 'invalid_grant', 'reuse')
  t.equal((await refresh(retried.json().refresh_token)).json().error, 'invalid_grant', 'the family ended')
  t.equal((await refresh(refreshTokens[1] as string, basic('web', ''))).json().error, 'invalid_grant', 'another client')
  const damaged = (refreshTokens[1] as string).slice(0, -4) + 'AAAA'
  keep(damaged)
  t.equal((await refresh(damaged)).json().error, 'invalid_grant', 'damaged')
  t.equal((await revoke(refreshTokens[1] as string)).statusCode, 200)
  t.equal((await refresh(refreshTokens[1] as string)).json().error, 'invalid_grant', 'revoked')
  t.equal((await revoke(tokens[1] as string)).statusCode, 200)
  t.equal((await app.inject({ url: '/admin', headers: bearer(tokens[1] as string) })).statusCode, 401, 'a revoked access token')
  const inQuery = await app.inject({ method: 'POST', url: `/revoke?token=${refreshTokens[2] as string}`, headers: { ...service, 'content-type': 'application/x-www-form-urlencoded' }, payload: '' })
  t.equal(inQuery.statusCode, 400)

  // Failures at the token endpoint: wrong passwords until throttled, unknown and disabled users,
  // a wrong client secret, a malformed request carrying a password.
  for (const password of WRONG) t.equal((await grant('user1', password)).statusCode, 400)
  t.equal((await grant('user1', PASSWORDS.user)).statusCode, 429)
  t.equal((await grant('nobody', WRONG[0] as string)).statusCode, 400)
  t.equal((await grant('disabled', PASSWORDS.user)).statusCode, 400)
  t.equal((await grant('admin', PASSWORDS.admin, basic('service', WRONG[1] as string))).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ password: PASSWORDS.admin }) })).statusCode, 400)

  // Rehashing runs after each answer is sent; give it a moment.
  await Promise.race([rehashing, sleep(5000, undefined, { ref: false })])
  t.equal(rehashed, 3, 'the two outdated argon2 hashes and the bcrypt one were upgraded')
  await app.close()
  return { lines, secrets }
}

function leaks ({ lines, secrets }: Session): string[] {
  const text = lines.join('')
  return secrets.filter((secret) => text.includes(secret))
}

t.test('a full session logged at trace level with the README\'s setting leaves no secret in the log', async (t) => {
  const logged = await session(t, RECOMMENDED)
  t.ok(logged.lines.length > 40, `the session was logged (${logged.lines.length} lines)`)
  const events = logged.lines.map((line) => JSON.parse(line)).filter((entry) => entry.authEvent !== undefined)
  const types = new Set(events.map((e) => e.authEvent.type))
  t.same(['login.failure', 'token.rejected', 'password.rehashed', 'refresh.success', 'refresh.reuse', 'refresh.failure', 'token.revoked'].filter((type) => !types.has(type)), [],
    'security events were logged, refresh and revocation among them')
  t.same(leaks(logged), [])
})

t.test('with every request header logged, the README\'s redact setting keeps them out', async (t) => {
  const logged = await session(t, HEADER_LOGGING)
  t.ok(logged.lines.some((line) => line.includes('"authorization":"[Redacted]"')), 'the header was there, redacted')
  t.ok(logged.lines.some((line) => line.includes('?access_token=[Redacted]')), 'the query token was there, masked')
  t.ok(logged.lines.some((line) => line.includes('/revoke?token=[Redacted]')), 'and the refresh token in /revoke\'s query string')
  t.same(leaks(logged), [])
})

t.test('the control: without the README\'s setting, tokens reach the log', async (t) => {
  // Shows the checks above can fail: the same session, headers logged, nothing redacted.
  const found = leaks(await session(t, { level: 'trace', serializers: { req: (req: FastifyRequest) => ({ url: req.url, headers: req.headers }) } }))
  t.ok(found.length > 0, 'bearer tokens show up')
  // And with Fastify's default serializer, a token a client put in a host route's query string.
  const defaults = leaks(await session(t, { level: 'trace' }))
  t.ok(defaults.length > 0, 'the ?access_token= of a host route shows up')
})

t.test('the token and revocation endpoints mask credentials in their own query strings, whatever the host logs', async (t) => {
  const { stream, lines } = captureLogs()
  const app = await buildApp(t, { server: { logger: { level: 'info', stream } }, plugin: { refreshTokens: true } })
  const query = 'username=user1&password=query-password-3c8d&Password=x&client%5Fsecret=cs-77a1&scope=profile&%E0%A4%A=1&token'
  for (const path of ['/token', '/revoke']) {
    for (const method of ['POST', 'GET'] as const) {
      const res = await app.inject({ method, url: `${path}?${query}`, payload: '' })
      t.equal(res.statusCode, method === 'POST' ? 400 : 405, `${method} ${path}`)
      const text = lines.join('')
      t.notOk(text.includes('query-password-3c8d') || text.includes('cs-77a1'), 'no credential from the query string')
      t.ok(text.includes(`${path}?username=user1&password=[Redacted]&Password=[Redacted]&client%5Fsecret=[Redacted]&scope=profile&%E0%A4%A=1&token=[Redacted]`),
        'names are matched decoded and in any case; the rest of the URL is kept')
      lines.length = 0
    }
  }
  // The token /revoke takes, sent in its query string instead of its body.
  const refreshToken = (await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })).json().refresh_token as string
  t.equal((await app.inject({ method: 'POST', url: `/revoke?token=${refreshToken}&token_type_hint=refresh_token`, payload: '' })).statusCode, 400)
  t.notOk(lines.join('').includes(refreshToken), 'a refresh token in the /revoke query string is masked')
  t.ok(lines.join('').includes('/revoke?token=[Redacted]&token_type_hint=refresh_token'))
})

t.test('the endpoints\' masking keeps the host\'s child-logger factory and its other serializers for the scope', async (t) => {
  const { stream, entries } = captureLogs()
  const users = await demoUsers()
  const app = Fastify({
    logger: { level: 'info', stream },
    // The host's own factory: every request logger carries a binding of its own.
    childLoggerFactory (logger, bindings, options) {
      return logger.child({ ...bindings, tenant: 'acme' }, options)
    }
  })
  t.teardown(() => app.close())
  await app.register(async function hostScope (scope) {
    await scope.register(tokenAuth, { secret: SECRET, findUser: (username) => users.get(username) ?? null, password: { ...CHEAP } })
  }, { logSerializers: { res: ((res: FastifyReply) => ({ statusCode: res.statusCode, marked: true })) as unknown as (value: unknown) => string } })
  const res = await app.inject({ method: 'POST', url: '/token?password=query-password-9e2b', payload: '' })
  t.equal(res.statusCode, 400)
  const incoming = entries().find((e) => e.msg === 'incoming request')
  t.match(incoming, { tenant: 'acme', req: { url: '/token?password=[Redacted]' } })
  t.match(entries().find((e) => e.msg === 'request completed'), { tenant: 'acme', res: { statusCode: 400, marked: true } })
  t.notOk(JSON.stringify(entries()).includes('query-password-9e2b'))
})

t.test('a credential parameter is masked however its name is dressed: brackets, spaces, NUL, two encodings, ;', async (t) => {
  const { stream, lines, entries } = captureLogs()
  const app = await buildApp(t, { server: { logger: { ...RECOMMENDED, stream } } })
  const cases: Array<[string, string]> = [
    ['password%5B%5D=arr-pw-1a&access_token%5B%5D=arr-tok-2b', 'password%5B%5D=[Redacted]&access_token%5B%5D=[Redacted]'],
    ['a=1;password=semi-pw-3c', 'a=1;password=[Redacted]'],
    ['password=semi-pw-4d;tail-4d', 'password=[Redacted]'],
    ['amp;password=amp-pw-5e&b=2', 'amp;password=[Redacted]&b=2'],
    ['+password=plus-pw-6f&password+=plus-pw-7a', '+password=[Redacted]&password+=[Redacted]'],
    ['password%00=nul-pw-8b&user[password]=nested-pw-9c', 'password%00=[Redacted]&user[password]=[Redacted]'],
    ['%2570assword=double-pw-0d&pass%zzword=kept', '%2570assword=[Redacted]&pass%zzword=kept'],
    ['sort=token&zip_code=12345', 'sort=token&zip_code=12345'],
    // A whole pair encoded by mistake: its name holds the value, so it goes too.
    ['password%3Denc-pw-1e&b=2', '[Redacted]&b=2']
  ]
  for (const [query] of cases) t.equal((await app.inject({ url: `/protected?${query}` })).statusCode, 401)
  const urls = entries().filter((e) => e.msg === 'incoming request').map((e) => (e.req as { url: string }).url)
  t.same(urls, cases.map(([, masked]) => `/protected?${masked}`))
  t.notMatch(lines.join(''), /-pw-|-tok-/, 'no value of a credential parameter')
})

t.test('with useSemicolonDelimiter the query starts at a `;` too, and is masked from there', async (t) => {
  const { stream, lines, entries } = captureLogs()
  // Where Fastify 5 reads it (the top-level option is deprecated), though its types omit it there.
  const routerOptions = { useSemicolonDelimiter: true } as Record<string, unknown>
  const app = await buildApp(t, { server: { logger: { ...RECOMMENDED, stream }, routerOptions } })
  const token = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(token.statusCode, 200)
  // Fastify reads `access_token` from the query here; the plugin ignores it (RFC 6750 §2.3 is not served).
  t.equal((await app.inject({ url: `/protected;access_token=${token.json().access_token as string}` })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/token;password=semi-pw-5a&grant_type=password' })).statusCode, 400)
  t.equal((await app.inject({ url: '/protected;a=1?password=semi-pw-6b' })).statusCode, 401)
  const urls = entries().filter((e) => e.msg === 'incoming request').map((e) => (e.req as { url: string }).url)
  t.same(urls.slice(-3), ['/protected;access_token=[Redacted]', '/token;password=[Redacted]&grant_type=password', '/protected;a=1?password=[Redacted]'])
  t.notMatch(lines.join(''), new RegExp(`semi-pw|${(token.json().access_token as string).split('.')[2] as string}`), 'no credential in any line')
})

t.test('notFoundHandler answers as Fastify does, with the query masked, and writes no line with the raw URL', async (t) => {
  const { stream, lines, entries } = captureLogs()
  const app = Fastify({ logger: { ...RECOMMENDED, stream } })
  t.teardown(() => app.close())
  app.setNotFoundHandler(notFoundHandler)
  const plain = Fastify()
  t.teardown(() => plain.close())
  for (const url of ['/nowhere', '/nowhere?x=1&y', '/token/']) {
    const [ours, fastify] = [await app.inject({ method: 'POST', url }), await plain.inject({ method: 'POST', url })]
    t.equal(ours.statusCode, 404)
    t.same(ours.json(), fastify.json(), `${url}: the same answer as Fastify's own`)
  }
  const res = await app.inject({ method: 'POST', url: '/token/?grant_type=password&username=user1&password=typo-pw-4e1a' })
  t.same(res.json(), { message: 'Route POST:/token/?grant_type=password&username=user1&password=[Redacted] not found', error: 'Not Found', statusCode: 404 })
  t.notOk(lines.join('').includes('typo-pw-4e1a'), 'the password is in no line')
  t.match(entries().filter((e) => e.msg === 'request completed').at(-1), { res: { statusCode: 404 } }, 'the request\'s own lines tell of the 404')
})

t.test('requestLogSerializer keeps a req object of the host\'s own shape, and redact still applies', async (t) => {
  const { stream, entries } = captureLogs()
  const app = await buildApp(t, { server: { logger: { ...RECOMMENDED, stream } } })
  app.log.info({ req: { headers: { authorization: 'Bearer own-shape-token-0e1f', accept: '*/*' } } }, 'own shape')
  t.match(entries().find((e) => e.msg === 'own shape'), { req: { headers: { authorization: '[Redacted]', accept: '*/*' } } })
  app.log.info({ req: null }, 'null req')
  t.match(entries().find((e) => e.msg === 'null req'), { req: null })
})

t.test('the example server redacts authorization and cookie headers, as the security model page shows', async (t) => {
  const page = readFileSync(new URL('../docs/security-model.md', import.meta.url), 'utf8')
  t.match(page, "redact: ['req.headers.authorization', 'req.headers.cookie', 'err.rawPacket']")
  t.match(readFileSync(new URL('../examples/server.ts', import.meta.url), 'utf8'), "redact: ['req.headers.authorization', 'req.headers.cookie', 'err.rawPacket']", 'the example has the same list')
  t.match(page, 'serializers: { req: requestLogSerializer }')

  const written: string[] = []
  let typo: LightMyRequestResponse | undefined
  const original = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string | Uint8Array) => { written.push(String(chunk)); return true }) as typeof process.stdout.write
  try {
    const app = await buildServer({ LOG_LEVEL: 'info', JWT_SECRET: SECRET })
    app.log.info({ req: { headers: { authorization: 'Bearer example-token-1f2e', cookie: 'sid=example-cookie-9d8c', accept: '*/*' } } }, 'a request')
    await app.inject({ url: '/protected?access_token=example-query-token-6b4a' })
    typo = await app.inject({ method: 'POST', url: '/token/?grant_type=password&username=user1&password=example-typo-pw-3f9c' })
    await app.close()
  } finally {
    process.stdout.write = original
  }
  const line = written.find((l) => l.includes('a request')) ?? ''
  t.match(JSON.parse(line), { req: { headers: { authorization: '[Redacted]', cookie: '[Redacted]', accept: '*/*' } } })
  const all = written.join('')
  t.notOk(all.includes('example-token-1f2e') || all.includes('example-cookie-9d8c') || all.includes('example-query-token-6b4a') || all.includes('example-typo-pw-3f9c'), 'nothing leaked')
  t.ok(all.includes('/protected?access_token=[Redacted]'), 'the request was logged, its query token masked')
  t.equal(typo?.statusCode, 404, 'a typo in the path')
  t.match(typo?.json().message, 'password=[Redacted]', 'is answered with the password masked, and logged with it masked')
})
