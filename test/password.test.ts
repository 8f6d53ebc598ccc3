import t from 'tap'
import argon2 from 'argon2'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp, tokenRequest, cheapHash, demoUsers, CHEAP, captureLogs } from './helper.js'
import { hashPassword, verifyPassword, needsRehash, createMemoryStore, type AuthEvent, type AuthStore, type UserRecord } from '../lib/index.js'

// argon2id hashing, verification, rehash on login and Unicode normalisation.

const GOOD = Object.freeze({ grant_type: 'password', username: 'user1', password: 'password1' })
const STRONGER = Object.freeze({ memoryCost: 512, timeCost: 3, parallelism: 1 })
const NFD = 'caf' + 'e\u0301' // "café" with a combining acute accent
const NFC = 'caf\u00e9' // "café" with a precomposed é

/** A user record and a findUser that serves only it. */
function onlyUser (user: UserRecord): (username: string) => UserRecord | null {
  return (username) => username === user.username ? user : null
}

t.test('hashPassword', async (t) => {
  t.test('is argon2id with OWASP\'s parameters by default', async (t) => {
    const hash = await hashPassword('correct horse')
    t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/)
    t.equal(await verifyPassword(hash, 'correct horse'), true)
    t.equal(needsRehash(hash), false)
  })

  t.test('writes the parameters in the PHC order m,t,p, which strict readers require', async (t) => {
    const hash = await hashPassword('x', CHEAP)
    t.match(hash, /^\$argon2id\$v=19\$m=256,t=2,p=1\$/)
    t.equal(await verifyPassword(hash, 'x'), true)
  })

  t.test('takes other parameters', async (t) => {
    t.match(await hashPassword('x', STRONGER), /^\$argon2id\$v=19\$m=512,t=3,p=1\$/)
  })

  t.test('salts every hash', async (t) => {
    t.not(await hashPassword('same', CHEAP), await hashPassword('same', CHEAP))
  })

  t.test('refuses an empty or non-string password', async (t) => {
    await t.rejects(hashPassword(''), TypeError)
    await t.rejects(hashPassword(undefined as unknown as string), TypeError)
    await t.rejects(hashPassword(42 as unknown as string), TypeError)
  })
})

t.test('verifyPassword', async (t) => {
  const hash = await cheapHash('password1')
  t.equal(await verifyPassword(hash, 'password1'), true)
  t.equal(await verifyPassword(hash, 'password2'), false)
  t.equal(await verifyPassword(hash, 'Password1'), false)
  t.equal(await verifyPassword(hash, ''), false)
  // Never throws: anything that is not a readable hash is simply not a match.
  for (const garbage of ['', 'not-a-hash', '$argon2id$v=19$m=19456,t=2,p=1$', '$2b$10$abcdefghijklmnopqrstuv', hash.slice(0, -5)]) {
    t.equal(await verifyPassword(garbage, 'password1'), false, `garbage ${JSON.stringify(garbage.slice(0, 20))}`)
  }
  t.equal(await verifyPassword(undefined as unknown as string, 'password1'), false)
  t.equal(await verifyPassword(hash, undefined as unknown as string), false)
})

t.test('needsRehash', async (t) => {
  const cheap = await cheapHash('password1')
  const stronger = await hashPassword('password1', STRONGER)

  t.test('false for a hash with the wanted parameters or stronger ones', async (t) => {
    t.equal(needsRehash(cheap, CHEAP), false)
    t.equal(needsRehash(stronger, STRONGER), false)
    t.equal(needsRehash(stronger, CHEAP), false)
    t.equal(needsRehash(stronger, { ...CHEAP, memoryCost: 512 }), false)
  })

  t.test('true for less memory or fewer iterations than wanted', async (t) => {
    t.equal(needsRehash(cheap, { ...CHEAP, memoryCost: 512 }), true)
    t.equal(needsRehash(cheap, { ...CHEAP, timeCost: 3 }), true)
    t.equal(needsRehash(cheap), true, 'weaker than the OWASP defaults')
    t.equal(needsRehash(stronger, { ...STRONGER, timeCost: 4 }), true)
  })

  t.test('true for another argon2 variant or an older version', async (t) => {
    const argon2i = await argon2.hash('password1', { ...CHEAP, type: argon2.argon2i })
    const argon2d = await argon2.hash('password1', { ...CHEAP, type: argon2.argon2d })
    t.match(argon2i, /^\$argon2i\$/)
    t.equal(needsRehash(argon2i, CHEAP), true)
    t.equal(needsRehash(argon2d, CHEAP), true)
    t.equal(needsRehash(cheap.replace('$v=19$', '$v=16$'), CHEAP), true)
  })

  t.test('regression: parameters are read in any order (node-argon2 writes m,p,t)', async (t) => {
    // needsRehash used to accept only m,t,p, so every hash node-argon2 made looked outdated and
    // every login rehashed.
    const raw = await argon2.hash('password1', { ...CHEAP, type: argon2.argon2id })
    t.match(raw, /^\$argon2id\$v=19\$m=256,p=1,t=2\$/, 'node-argon2 still writes m,p,t')
    t.equal(needsRehash(raw, CHEAP), false)
    t.equal(needsRehash(raw, { ...CHEAP, timeCost: 3 }), true)
    t.equal(needsRehash(raw, { ...CHEAP, memoryCost: 512 }), true)
    t.equal(await verifyPassword(raw, 'password1'), true)
  })

  t.test('true for anything unreadable', async (t) => {
    for (const garbage of [
      '', 'garbage', '$2b$10$abcdefghijklmnopqrstuv', '$argon2id$v=19$m=x,t=2,p=1$abc$def',
      '$argon2id$v=19$t=2,p=1$abc$def', '$argon2id$v=19$m=19456,p=1$abc$def', '$argon2id$m=19456,t=2,p=1$abc$def'
    ]) {
      t.equal(needsRehash(garbage, CHEAP), true, JSON.stringify(garbage))
    }
  })
})

t.test('Unicode normalisation (NFC)', async (t) => {
  t.test('a password hashed as NFD verifies as NFC, and the other way round', async (t) => {
    t.not(NFD, NFC)
    t.equal(await verifyPassword(await hashPassword(NFD, CHEAP), NFC), true)
    t.equal(await verifyPassword(await hashPassword(NFC, CHEAP), NFD), true)
  })

  t.test('a password stored as NFD logs in typed as NFC through /token', async (t) => {
    const user: UserRecord = { username: 'user1', passwordHash: await hashPassword(NFD, CHEAP), scopes: ['profile'] }
    const app = await buildApp(t, { plugin: { findUser: onlyUser(user) } })
    const res = await tokenRequest(app, { ...GOOD, password: NFC })
    t.equal(res.statusCode, 200)
    t.equal(res.json().token_type, 'Bearer')
    t.equal((await tokenRequest(app, { ...GOOD, password: NFD })).statusCode, 200)
  })

  t.test('the username reaches findUser in NFC', async (t) => {
    const seen: string[] = []
    const user: UserRecord = { username: 'jos\u00e9', passwordHash: await cheapHash('password1') }
    const app = await buildApp(t, {
      plugin: {
        findUser: (username) => {
          seen.push(username)
          return onlyUser(user)(username)
        }
      }
    })
    const res = await tokenRequest(app, { ...GOOD, username: 'jose\u0301' })
    t.equal(res.statusCode, 200)
    t.same(seen, ['jos\u00e9'])
  })
})

t.test('rehash on login (onPasswordRehash)', async (t) => {
  t.test('an outdated hash is replaced by one with the configured parameters', async (t) => {
    const user: UserRecord = { username: 'user1', passwordHash: await cheapHash('password1'), scopes: ['profile'] }
    const events: AuthEvent[] = []
    let rehashed!: (value: { user: UserRecord, newHash: string }) => void
    const done = new Promise<{ user: UserRecord, newHash: string }>((resolve) => { rehashed = resolve })
    const app = await buildApp(t, {
      plugin: {
        findUser: onlyUser(user),
        password: { ...STRONGER },
        onPasswordRehash: (u, newHash) => rehashed({ user: u, newHash }),
        onAuthEvent: (e) => events.push(e)
      }
    })
    const res = await tokenRequest(app, GOOD)
    t.equal(res.statusCode, 200)
    const { user: got, newHash } = await done
    t.equal(got, user, 'the record findUser returned')
    t.match(newHash, /^\$argon2id\$v=19\$m=512,t=3,p=1\$/)
    t.not(newHash, user.passwordHash)
    t.equal(await verifyPassword(newHash, 'password1'), true)
    t.equal(needsRehash(newHash, STRONGER), false)
    await sleep(10) // the event follows the host's callback
    t.match(events.find((e) => e.type === 'password.rehashed'), { username: 'user1' })
    t.notOk(JSON.stringify(events).includes('$argon2'), 'no hash in the events')

    // The host stores it; the next login has nothing to upgrade.
    user.passwordHash = newHash
    let again = 0
    const app2 = await buildApp(t, {
      plugin: { findUser: onlyUser(user), password: { ...STRONGER }, onPasswordRehash: () => { again++ } }
    })
    t.equal((await tokenRequest(app2, GOOD)).statusCode, 200)
    await sleep(100)
    t.equal(again, 0)
  })

  t.test('not called when the hash is current or stronger', async (t) => {
    const calls: string[] = []
    const stronger: UserRecord = { username: 'strong', passwordHash: await hashPassword('password1', STRONGER) }
    const current: UserRecord = { username: 'user1', passwordHash: await cheapHash('password1') }
    const app = await buildApp(t, {
      plugin: {
        findUser: (username) => username === 'strong' ? stronger : onlyUser(current)(username),
        onPasswordRehash: (user) => { calls.push(user.username) }
      }
    })
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
    t.equal((await tokenRequest(app, { ...GOOD, username: 'strong' })).statusCode, 200)
    await sleep(100)
    t.same(calls, [])
  })

  t.test('not called after a failed login', async (t) => {
    const calls: string[] = []
    const app = await buildApp(t, {
      plugin: { password: { ...STRONGER }, onPasswordRehash: (user) => { calls.push(user.username) } }
    })
    t.equal((await tokenRequest(app, { ...GOOD, password: 'wrong' })).statusCode, 400)
    t.equal((await tokenRequest(app, { ...GOOD, username: 'disabled-user' })).statusCode, 400)
    await sleep(100)
    t.same(calls, [])
  })

  t.test('an outdated hash with no onPasswordRehash still logs in', async (t) => {
    const app = await buildApp(t, { plugin: { password: { ...STRONGER } } })
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
  })

  t.test('an onPasswordRehash that throws does not break login, and is logged', async (t) => {
    const { stream, lines } = captureLogs()
    let called = 0
    const app = await buildApp(t, {
      server: { logger: { level: 'warn', stream } },
      plugin: {
        password: { ...STRONGER },
        onPasswordRehash: async () => {
          called++
          throw new Error('database is read-only')
        }
      }
    })
    const res = await tokenRequest(app, GOOD)
    t.equal(res.statusCode, 200)
    t.equal(res.json().token_type, 'Bearer')
    const deadline = Date.now() + 5000
    while (!lines.some((line) => line.includes('password rehash skipped')) && Date.now() < deadline) await sleep(5)
    t.equal(called, 1)
    const warning = lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'password rehash skipped')
    t.match(warning, { level: 40, err: { message: 'database is read-only' } }, 'a warning is logged, with the error')
    t.notOk(lines.join('').includes('$argon2'), 'no hash in the log')
    // The app keeps working.
    t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
  })

  t.test('a rehash is skipped, not queued, when the hashing pool is full', async (t) => {
    // The login's own verify is done and its slot free; then one verify runs and one waits, so
    // the rehash finds the pool full. It must give up (the next login will try again) rather
    // than queue more work or fail the login.
    const store = createMemoryStore()
    let resetStarted!: () => void
    const verified = new Promise<void>((resolve) => { resetStarted = resolve })
    let openGate!: () => void
    const gate = new Promise<void>((resolve) => { openGate = resolve })
    const gatedStore: AuthStore = {
      ...store,
      reset: async (key) => {
        // The login's success clears its (username, source) count; keys hold a hash of the name.
        if (key.startsWith('login:us:')) {
          resetStarted()
          await gate
        }
        await store.reset(key)
      }
    }
    const users = await demoUsers()
    const lookups: string[] = []
    const { stream, lines } = captureLogs()
    let rehashed = 0
    const app = await buildApp(t, {
      server: { logger: { level: 'warn', stream } },
      plugin: {
        store: gatedStore,
        password: { memoryCost: 19456, timeCost: 2, parallelism: 1, maxConcurrent: 1, maxQueue: 1 },
        findUser: (username) => {
          lookups.push(username)
          return users.get(username) ?? null
        },
        onPasswordRehash: () => { rehashed++ }
      }
    })
    const login = tokenRequest(app, GOOD)
    await verified
    const others = [tokenRequest(app, { ...GOOD, username: 'ghost1' }), tokenRequest(app, { ...GOOD, username: 'ghost2' })]
    while (lookups.length < 3) await sleep(1)
    await new Promise((resolve) => setImmediate(resolve)) // both are now in the pool: one running, one waiting
    openGate()
    const res = await login
    t.equal(res.statusCode, 200)
    for (const other of await Promise.all(others)) t.equal(other.json().error, 'invalid_grant')
    const deadline = Date.now() + 5000
    while (!lines.some((line) => line.includes('password rehash skipped')) && Date.now() < deadline) await sleep(5)
    const warning = lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'password rehash skipped')
    t.ok(warning, 'the skip is logged')
    t.notOk('err' in warning, 'a full pool is not logged as an error')
    t.equal(rehashed, 0)
  })
})
