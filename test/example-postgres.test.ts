import t from 'tap'
import { readdirSync } from 'node:fs'
import os from 'node:os'
import type { FastifyInstance } from 'fastify'
import { hashPassword, needsRehash } from '../lib/index.js'
import { buildServer, type ServerOptions } from '../examples/postgres/server.js'
import { buildServer as buildExampleServer } from '../examples/server.js'
import { loadCommonPasswords, normalizeUsername, passwordProblem } from '../examples/postgres/users.js'
import pg from 'pg'
import { bearer, CHEAP, DATABASE_URL, FORM, form, NO_POSTGRES, postgresPool, testSchema } from './helper.js'

/*
 * The PostgreSQL example (examples/postgres), step by step as docs/postgres.md walks through it,
 * on the real PostgreSQL at DATABASE_URL, each test in a schema of its own.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const ADMIN_PASSWORD = 'a long admin passphrase'

async function example (tt: Tap, options: Partial<ServerOptions> = {}, pool = postgresPool(tt)) {
  const schema = await testSchema(tt, pool)
  const app = await buildServer({ pool, schema, logLevel: 'silent', adminPassword: ADMIN_PASSWORD, hashParameters: CHEAP, accountRateLimit: false, ...options })
  tt.teardown(() => app.close())
  return { app, pool, schema }
}

const signUp = (app: FastifyInstance, username: string, password: string) =>
  app.inject({ method: 'POST', url: '/signup', payload: { username, password } })

async function logIn (app: FastifyInstance, username: string, password: string) {
  return await app.inject({ method: 'POST', url: '/token', headers: FORM, payload: form({ grant_type: 'password', username, password }) })
}

async function session (tt: Tap, app: FastifyInstance, username: string, password: string) {
  const res = await logIn(app, username, password)
  tt.equal(res.statusCode, 200, `${username} logs in`)
  return res.json() as { access_token: string, refresh_token: string }
}

t.test('the PostgreSQL example', { skip: NO_POSTGRES }, async (t) => {
  t.test('the walk-through: sign up, log in, change the password (old tokens refused), an admin disables the user', async (t) => {
    const { app } = await example(t)
    t.same((await signUp(app, 'Zoë', 'correct horse battery staple')).json(), { username: 'Zoë' })
    const first = await session(t, app, 'zoë', 'correct horse battery staple')
    const me = await app.inject({ url: '/me', headers: bearer(first.access_token) })
    t.same(me.json(), { sub: me.json().sub, scope: 'profile' })
    t.match(me.json().sub, /^[1-9][0-9]*$/, 'sub is the user\'s id')

    const change = await app.inject({
      method: 'POST', url: '/me/password', headers: bearer(first.access_token), payload: { oldPassword: 'correct horse battery staple', newPassword: 'a new and longer passphrase' }
    })
    t.equal(change.statusCode, 204)
    t.equal((await app.inject({ url: '/me', headers: bearer(first.access_token) })).statusCode, 401, 'the old access token is refused')
    const refresh = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload: form({ grant_type: 'refresh_token', refresh_token: first.refresh_token }) })
    t.equal(refresh.json().error, 'invalid_grant', 'and the old refresh token')
    t.equal((await logIn(app, 'Zoë', 'correct horse battery staple')).json().error, 'invalid_grant', 'the old password is refused')
    const second = await session(t, app, 'Zoë', 'a new and longer passphrase')
    t.equal((await app.inject({ url: '/me', headers: bearer(second.access_token) })).statusCode, 200)

    const admin = await session(t, app, 'admin', ADMIN_PASSWORD)
    const disable = await app.inject({ method: 'POST', url: '/admin/users/ZOË/disable', headers: bearer(admin.access_token) })
    t.equal(disable.statusCode, 204)
    t.equal((await app.inject({ url: '/me', headers: bearer(second.access_token) })).statusCode, 401, 'the disabled user\'s token is refused at once')
    const refreshDisabled = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload: form({ grant_type: 'refresh_token', refresh_token: second.refresh_token }) })
    t.equal(refreshDisabled.json().error, 'invalid_grant', 'so is their refresh token')
    t.equal((await logIn(app, 'Zoë', 'a new and longer passphrase')).json().error, 'invalid_grant', 'and they cannot log in')
    t.equal((await app.inject({ url: '/me', headers: bearer(admin.access_token) })).statusCode, 200, 'the admin is untouched')
  })

  t.test('usernames are unique on their normalised form: case, width and composition collide', async (t) => {
    const { app, pool, schema } = await example(t)
    t.equal((await signUp(app, 'Zoë', 'first user passphrase')).statusCode, 201)
    // Upper case; full-width letters; "e" + combining diaeresis: all the same name once NFKC'd and lower-cased.
    for (const name of ['ZOË', 'Ｚｏë', 'Zoe\u0308']) {
      const res = await signUp(app, name, 'another passphrase here')
      t.equal(res.statusCode, 409, JSON.stringify(name))
      t.same(res.json(), { error: 'username_taken', error_description: 'This username is taken' })
    }
    // Ten sign-ups racing for one new name: the unique index lets exactly one through.
    const race = await Promise.all(Array.from({ length: 10 }, (_, i) => signUp(app, i % 2 === 0 ? 'racer' : 'RACER', 'racing passphrase here')))
    t.same(race.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409, 409, 409, 409, 409, 409])
    const rows = await pool.query(`SELECT username, username_normalized FROM "${schema}".users WHERE username_normalized IN ('zoë', 'racer')`)
    t.equal(rows.rowCount, 2)
    t.equal((await logIn(app, 'ＺＯË', 'first user passphrase')).statusCode, 200, 'the user logs in under any of its forms')
  })

  t.test('sign-up refuses weak passwords (ASVS 5.0 6.2) and bad bodies, never with a 500', async (t) => {
    const { app } = await example(t)
    const refused = async (username: string, password: string, error: string) => {
      const res = await signUp(app, username, password)
      t.equal(res.statusCode, 400, `${JSON.stringify(username)} / ${password.length} chars`)
      t.equal(res.json().error, error)
    }
    await refused('alice', 'short7!', 'invalid_password')
    await refused('alice', 'password123', 'invalid_password')
    await refused('alice', 'PassWord123', 'invalid_password')
    await refused('alice', 'ＰＡＳＳＷＯＲＤ１', 'invalid_password')
    await refused('alice1234', 'ALICE1234', 'invalid_password')
    await refused('al', 'long enough passphrase', 'invalid_username')
    await refused('alice\u0000', 'long enough passphrase', 'invalid_username')
    await refused('ali ce', 'long enough passphrase', 'invalid_username')
    await refused('alice\u200d', 'long enough passphrase', 'invalid_username')
    // Astral characters count as one character each toward the minimum, as people count them…
    t.equal((await signUp(app, 'emoji', '🔑🔑🔑🔑🔑🔑🔑🔑')).statusCode, 201, 'eight emoji are eight characters')
    // …but toward the cap as the plugin counts at login (UTF-16 units), so no password is set that login would refuse.
    const res = await signUp(app, 'capped', '🔑'.repeat(513))
    t.equal(res.statusCode, 400)
    t.match(res.json().error_description, /at most 1024/)
    t.equal((await signUp(app, 'longest', 'x'.repeat(1023) + 'y')).statusCode, 201, 'the plugin\'s cap itself is fine')
    t.equal((await logIn(app, 'longest', 'x'.repeat(1023) + 'y')).statusCode, 200, 'and logs in')
    t.equal((await signUp(app, 'nocomposition', 'all lower case words')).statusCode, 201, 'no composition rules')

    // Fastify's defaults drop unknown fields: no scope can be asked for at sign-up.
    t.equal((await app.inject({ method: 'POST', url: '/signup', payload: { username: 'bob', password: 'long enough passphrase', scopes: ['admin'], admin: true } })).statusCode, 201)
    const bob = await session(t, app, 'bob', 'long enough passphrase')
    t.equal((await app.inject({ url: '/me', headers: bearer(bob.access_token) })).json().scope, 'profile', 'the extra fields were ignored')
    for (const payload of [{}, { username: 'bob' }, { username: 'bob', password: { a: 1 } }, { username: 'bob', password: 'x'.repeat(1025) },
      { username: 'b'.repeat(65), password: 'long enough passphrase' }]) {
      const bad = await app.inject({ method: 'POST', url: '/signup', payload })
      t.equal(bad.statusCode, 400, JSON.stringify(payload).slice(0, 80))
    }
    t.equal((await app.inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'application/json' }, payload: '{"username":' })).statusCode, 400, 'broken JSON')
    t.equal((await app.inject({ method: 'POST', url: '/signup', headers: FORM, payload: 'username=bob&password=long+enough+passphrase' })).statusCode, 415, 'not JSON')
  })

  t.test('a password change needs the right old password, and a valid new one', async (t) => {
    const { app } = await example(t)
    await signUp(app, 'carol', 'carol passphrase one')
    const { access_token: token } = await session(t, app, 'carol', 'carol passphrase one')
    const change = (payload: unknown, headers = bearer(token)) => app.inject({ method: 'POST', url: '/me/password', headers, payload: payload as object })
    const wrong = await change({ oldPassword: 'not the password', newPassword: 'carol passphrase two' })
    t.equal(wrong.statusCode, 400)
    t.equal(wrong.json().error, 'invalid_password')
    t.equal((await change({ oldPassword: 'carol passphrase one', newPassword: 'password1234' })).json().error, 'invalid_password', 'a common one')
    t.equal((await change({ newPassword: 'carol passphrase two' })).statusCode, 400, 'no old password: no change')
    t.equal((await change({ oldPassword: 'carol passphrase one', newPassword: 'carol passphrase two' }, {} as never)).statusCode, 401, 'no token: no change')
    t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200, 'nothing was revoked by the refused attempts')
    t.equal((await logIn(app, 'carol', 'carol passphrase one')).statusCode, 200, 'the password is unchanged')
  })

  t.test('only an admin disables a user, and an unknown user is a 404', async (t) => {
    const { app } = await example(t)
    await signUp(app, 'dave', 'dave passphrase here')
    await signUp(app, 'erin', 'erin passphrase here')
    const dave = await session(t, app, 'dave', 'dave passphrase here')
    const byUser = await app.inject({ method: 'POST', url: '/admin/users/erin/disable', headers: bearer(dave.access_token) })
    t.equal(byUser.statusCode, 403, 'a user without the admin scope')
    t.equal((await app.inject({ method: 'POST', url: '/admin/users/erin/disable' })).statusCode, 401, 'no token')
    t.equal((await logIn(app, 'erin', 'erin passphrase here')).statusCode, 200, 'erin is still enabled')
    t.equal((await signUp(app, 'mallory', 'mallory passphrase')).statusCode, 201)
    const mallory = await session(t, app, 'mallory', 'mallory passphrase')
    t.equal((await app.inject({ url: '/admin', headers: bearer(mallory.access_token) })).statusCode, 404, 'no admin scope comes with a sign-up')
    const admin = await session(t, app, 'admin', ADMIN_PASSWORD)
    for (const name of ['nobody', 'x'.repeat(64), '%00']) {
      t.equal((await app.inject({ method: 'POST', url: `/admin/users/${name}/disable`, headers: bearer(admin.access_token) })).statusCode, 404, name.slice(0, 10))
    }
    t.equal((await app.inject({ method: 'POST', url: `/admin/users/${'x'.repeat(65)}/disable`, headers: bearer(admin.access_token) })).statusCode, 400)
  })

  t.test('onPasswordRehash writes the new hash back when the parameters grow', async (t) => {
    const { app, pool, schema } = await example(t)
    await signUp(app, 'frank', 'frank passphrase here')
    const stored = async () => (await pool.query(`SELECT password_hash FROM "${schema}".users WHERE username_normalized = 'frank'`)).rows[0].password_hash as string
    const before = await stored()
    const stronger = { ...CHEAP, memoryCost: 2 * CHEAP.memoryCost }
    t.ok(needsRehash(before, stronger))
    // The same database, a new deployment with stronger parameters.
    const next = await buildServer({ pool, schema, logLevel: 'silent', hashParameters: stronger, accountRateLimit: false })
    t.teardown(() => next.close())
    t.equal((await logIn(next, 'frank', 'frank passphrase here')).statusCode, 200)
    for (let i = 0; i < 50 && await stored() === before; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    const after = await stored()
    t.not(after, before, 'the hash was rewritten')
    t.notOk(needsRehash(after, stronger), 'with the new parameters')
    t.equal((await logIn(next, 'frank', 'frank passphrase here')).statusCode, 200, 'and the password still works')
  })

  t.test('sign-ups are limited per address, password changes per account whatever the address', async (t) => {
    const { app } = await example(t, { accountRateLimit: { signUp: { max: 2, timeWindow: 60_000 }, passwordChange: { max: 2, timeWindow: 3_600_000 } } })
    t.equal((await signUp(app, 'grace1', 'grace passphrase')).statusCode, 201)
    t.equal((await signUp(app, 'grace2', 'grace passphrase')).statusCode, 201)
    const third = await signUp(app, 'grace3', 'grace passphrase')
    t.equal(third.statusCode, 429)
    t.ok(third.headers['retry-after'])
    t.equal(third.json().error, 'too_many_requests')
    t.equal((await app.inject({ method: 'POST', url: '/signup', remoteAddress: '2001:db8:1:2::1', payload: { username: 'grace3', password: 'grace passphrase' } })).statusCode, 201, 'another address')
    t.equal((await app.inject({ method: 'POST', url: '/signup', remoteAddress: '2001:db8:1:2::2', payload: { username: 'grace4', password: 'grace passphrase' } })).statusCode, 201)
    t.equal((await app.inject({ method: 'POST', url: '/signup', remoteAddress: '2001:db8:1:2::3', payload: { username: 'grace5', password: 'grace passphrase' } })).statusCode, 429, 'an IPv6 /64 is one address')

    // Someone holding grace1's token guesses her password from a new address each time.
    const token = (await session(t, app, 'grace1', 'grace passphrase')).access_token
    const guess = (oldPassword: string, i: number) => app.inject({
      method: 'POST', url: '/me/password', remoteAddress: `192.0.2.${i}`, headers: bearer(token), payload: { oldPassword, newPassword: 'taken over passphrase' }
    })
    t.equal((await guess('guess one', 1)).json().error, 'invalid_password')
    t.equal((await guess('guess two', 2)).json().error, 'invalid_password')
    const limited = await guess('grace passphrase', 3)
    t.equal(limited.statusCode, 429, 'the third try at one account is refused, the right password too')
    t.equal(limited.json().error, 'too_many_requests')
    t.equal((await logIn(app, 'grace1', 'grace passphrase')).statusCode, 200, 'the password is unchanged')
    const other = (await session(t, app, 'grace2', 'grace passphrase')).access_token
    const change = await app.inject({ method: 'POST', url: '/me/password', remoteAddress: '192.0.2.1', headers: bearer(other), payload: { oldPassword: 'grace passphrase', newPassword: 'grace two passphrase' } })
    t.equal(change.statusCode, 204, 'another account, from the same address, is not held up')
  })

  t.test('a weak new password is refused whatever the old one: the answer never confirms the old password', async (t) => {
    const { app } = await example(t)
    await signUp(app, 'judy', 'judy passphrase here')
    const { access_token: token } = await session(t, app, 'judy', 'judy passphrase here')
    const answers = []
    for (const oldPassword of ['judy passphrase here', 'not judy\'s password']) {
      const res = await app.inject({ method: 'POST', url: '/me/password', headers: bearer(token), payload: { oldPassword, newPassword: 'short' } })
      answers.push([res.statusCode, res.json()])
    }
    t.same(answers[0], answers[1])
    t.match(answers[0], [400, { error: 'invalid_password', error_description: /at least 8/ }])
  })

  t.test('of two password changes at once, one wins and the other is told', async (t) => {
    const base = postgresPool(t)
    // Both changes are held just before writing, until both have checked the old password.
    let waiting: Array<() => void> = []
    const pool = new Proxy(base, {
      get (target, property, receiver) {
        if (property !== 'query') return Reflect.get(target, property, receiver)
        return async (...args: Parameters<pg.Pool['query']>) => {
          if (typeof args[0] === 'string' && args[0].includes('SET password_hash')) {
            await new Promise<void>((resolve) => {
              waiting.push(resolve)
              if (waiting.length === 2) { waiting.forEach((go) => { go() }); waiting = [] }
            })
          }
          return await (target.query as (...a: unknown[]) => Promise<unknown>)(...args)
        }
      }
    })
    const { app } = await example(t, {}, pool)
    await signUp(app, 'kim', 'kim passphrase here')
    const [a, b] = [await session(t, app, 'kim', 'kim passphrase here'), await session(t, app, 'kim', 'kim passphrase here')]
    const change = (token: string, newPassword: string) => app.inject({ method: 'POST', url: '/me/password', headers: bearer(token), payload: { oldPassword: 'kim passphrase here', newPassword } })
    const answers = await Promise.all([change(a.access_token, 'kim first new passphrase'), change(b.access_token, 'kim second new passphrase')])
    t.same(answers.map((res) => res.statusCode).sort(), [204, 409])
    t.equal(answers.find((res) => res.statusCode === 409)?.json().error, 'password_changed')
    const won = answers[0]?.statusCode === 204 ? 'kim first new passphrase' : 'kim second new passphrase'
    t.equal((await logIn(app, 'kim', won)).statusCode, 200, 'the winner\'s password is the one set')
  })

  t.test('a password change the database fails halfway leaves the old password, and a retry works', async (t) => {
    const pool = postgresPool(t)
    const { app, schema } = await example(t, {}, pool)
    await signUp(app, 'liam', 'liam passphrase here')
    const { access_token: token } = await session(t, app, 'liam', 'liam passphrase here')
    // A long transaction holds the revocation epoch: "log out everywhere" waits past the store's timeout.
    const holder = await pool.connect()
    t.teardown(() => holder.release())
    await holder.query('BEGIN')
    await holder.query(`LOCK TABLE "${schema}".fastify_token_auth_revocation_epoch IN ACCESS EXCLUSIVE MODE`)
    let failed
    try {
      failed = await app.inject({ method: 'POST', url: '/me/password', headers: bearer(token), payload: { oldPassword: 'liam passphrase here', newPassword: 'liam new passphrase' } })
    } finally {
      await holder.query('COMMIT')
    }
    t.equal(failed.statusCode, 503)
    t.equal(failed.headers['retry-after'], '1')
    t.equal(failed.json().error, 'temporarily_unavailable')
    t.equal((await logIn(app, 'liam', 'liam new passphrase')).statusCode, 400, 'the new password was not set')
    const again = await session(t, app, 'liam', 'liam passphrase here')
    const retry = await app.inject({ method: 'POST', url: '/me/password', headers: bearer(again.access_token), payload: { oldPassword: 'liam passphrase here', newPassword: 'liam new passphrase' } })
    t.equal(retry.statusCode, 204, 'the retry, with the old password, goes through')
    t.equal((await logIn(app, 'liam', 'liam new passphrase')).statusCode, 200)
  })

  t.test('"admin" is ADMIN_PASSWORD\'s: no sign-up takes it, and a start whose password does not fit it says so', async (t) => {
    const pool = postgresPool(t)
    const { app, schema } = await example(t, { adminPassword: undefined }, pool)
    for (const name of ['admin', 'ADMIN', 'ａｄｍｉｎ']) {
      const res = await signUp(app, name, 'squatter passphrase')
      t.equal(res.statusCode, 409, name)
      t.equal(res.json().error, 'username_taken')
    }
    t.equal((await logIn(app, 'admin', 'squatter passphrase')).statusCode, 400)
    // An "admin" made before sign-ups reserved the name, with another password.
    await pool.query(`INSERT INTO "${schema}".users (username, username_normalized, password_hash) VALUES ('ａｄｍｉｎ', 'admin', $1)`, [await hashPassword('squatter passphrase', CHEAP)])
    const lines: string[] = []
    const next = await buildServer({ pool, schema, logLevel: 'info', logStream: { write: (line) => { lines.push(line) } }, adminPassword: ADMIN_PASSWORD, hashParameters: CHEAP, accountRateLimit: false })
    t.teardown(() => next.close())
    t.match(lines.join(''), /the user \\"admin\\" exists already and ADMIN_PASSWORD does not log in as it/)
    t.equal((await logIn(next, 'admin', ADMIN_PASSWORD)).statusCode, 400, 'left as it is')
    // A start whose ADMIN_PASSWORD fits the admin it made says nothing.
    const quiet: string[] = []
    const own = await example(t, { logLevel: 'info', logStream: { write: (line) => { quiet.push(line) } } })
    const again = await buildServer({ pool: own.pool, schema: own.schema, logLevel: 'info', logStream: { write: (line) => { quiet.push(line) } }, adminPassword: ADMIN_PASSWORD, hashParameters: CHEAP, accountRateLimit: false })
    t.teardown(() => again.close())
    t.notMatch(quiet.join(''), /exists already/)
  })

  t.test('refusals of the account routes are in the token endpoint\'s shape; the bearer check\'s keep theirs', async (t) => {
    const { app } = await example(t)
    const bad = await app.inject({ method: 'POST', url: '/signup', payload: { username: 'x' } })
    t.equal(bad.statusCode, 400)
    t.same(Object.keys(bad.json()).sort(), ['error', 'error_description'])
    t.equal(bad.json().error, 'invalid_request')
    const big = await app.inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ username: 'bigbody', password: 'p'.repeat(20_000) }) })
    t.equal(big.statusCode, 413)
    t.equal(big.json().error, 'invalid_request')
    const noToken = await app.inject({ method: 'POST', url: '/me/password', payload: { oldPassword: 'a', newPassword: 'b' } })
    t.equal(noToken.statusCode, 401)
    t.match(noToken.headers['www-authenticate'], /^Bearer /)
  })

  t.test('PostgreSQL away: the token endpoint answers 503, the account routes never 500', async (t) => {
    // A pool this test ends itself, halfway.
    const pool = new pg.Pool({ connectionString: DATABASE_URL })
    pool.on('error', () => {})
    const { app } = await example(t, {}, pool)
    await signUp(app, 'heidi', 'heidi passphrase')
    const { access_token: token } = await session(t, app, 'heidi', 'heidi passphrase')
    await pool.end()
    const login = await logIn(app, 'heidi', 'heidi passphrase')
    t.equal(login.statusCode, 503)
    t.equal(login.headers['retry-after'], '1')
    const signup = await signUp(app, 'ivan', 'ivan passphrase here')
    t.equal(signup.statusCode, 503, 'sign-up')
    t.equal(signup.headers['retry-after'], '1')
    t.equal(signup.json().error, 'temporarily_unavailable')
    t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 503, 'authenticate fails closed')
  })

  t.test('the threads that hash (logins and sign-ups alike) run at priority 10 unless threadPoolPriority says otherwise', {
    skip: process.platform !== 'linux' ? 'per-thread priorities are a Linux feature' : os.getPriority() !== 0 ? 'this process runs under nice: priorities are not read from 0' : false
  }, async (t) => {
    const threadsAt = (priority: number): number => readdirSync('/proc/self/task').filter((tid) => os.getPriority(Number(tid)) === priority).length
    await example(t)
    t.equal(threadsAt(10), Number(process.env.UV_THREADPOOL_SIZE ?? 4), 'the pool\'s threads, at 10 by default')
    await example(t, { threadPoolPriority: 13 })
    t.equal(threadsAt(13), Number(process.env.UV_THREADPOOL_SIZE ?? 4))
    t.equal(os.getPriority(), 0, 'the event loop\'s thread is left as it was')
  })

  t.test('the server refuses to start without a database, or with a weak admin password', async (t) => {
    await t.rejects(buildServer({ logLevel: 'silent' }), { message: /DATABASE_URL is not set/ })
    const pool = postgresPool(t)
    const schema = await testSchema(t, pool)
    await t.rejects(buildServer({ pool, schema, logLevel: 'silent', adminPassword: 'password1' }), { message: /ADMIN_PASSWORD: This password is too common/ })
  })
})

t.test('the example server keeps its sessions in PostgreSQL with STORE_DATABASE_URL', { skip: NO_POSTGRES }, async (t) => {
  const pool = postgresPool(t)
  const schema = `fja_test_${crypto.randomUUID().replaceAll('-', '')}`
  t.teardown(async () => { await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`) })
  const app = await buildExampleServer({ LOG_LEVEL: 'silent', JWT_SECRET: 'example-pg-secret-5d2b8f1c9e3a7d4b6f0a', STORE_DATABASE_URL: DATABASE_URL, STORE_DATABASE_SCHEMA: schema })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/token', headers: FORM, payload: form({ grant_type: 'password', username: 'user1', password: 'password1' }) })
  t.equal(res.statusCode, 200)
  const families = await pool.query(`SELECT sub FROM "${schema}".fastify_token_auth_families`)
  t.same(families.rows, [{ sub: 'user1' }], 'its tables were made at start, and the session is in them')
})

t.test('the rules, without a database', async (t) => {
  const common = loadCommonPasswords()
  t.ok(common.size > 3000, `the shipped list has ${common.size} passwords`)
  t.ok([...common].every((p) => p === p.toLowerCase() && p.length >= 8), 'lower-case, none shorter than the minimum')
  t.equal(passwordProblem('12345678', 'someone', 1024, common), 'This password is too common; choose another one')
  t.equal(passwordProblem('tr0ub4dor&3x', 'someone', 1024, common), undefined)
  t.equal(normalizeUsername('ＡＢＣ'), 'abc')
  t.equal(normalizeUsername('ﬁne'), 'fine', 'ligatures are split')
  t.equal(normalizeUsername('a\u0000b'), undefined)
})
