import t from 'tap'
import { readdirSync } from 'node:fs'
import os from 'node:os'
import type { FastifyInstance } from 'fastify'
import { needsRehash } from '../lib/index.js'
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

  t.test('sign-ups and password changes are limited per address', async (t) => {
    const { app } = await example(t, { accountRateLimit: { max: 2, timeWindow: 60_000 } })
    t.equal((await signUp(app, 'grace1', 'grace passphrase')).statusCode, 201)
    t.equal((await signUp(app, 'grace2', 'grace passphrase')).statusCode, 201)
    const third = await signUp(app, 'grace3', 'grace passphrase')
    t.equal(third.statusCode, 429)
    t.ok(third.headers['retry-after'])
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
