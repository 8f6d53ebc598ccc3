import t from 'tap'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp, tokenRequest, CHEAP } from './helper.js'
import { needsRehash, verifyPassword, type UserRecord } from '../lib/index.js'

// Users moving from the tutorial's FastAPI/passlib stack bring bcrypt hashes. With the optional
// `bcrypt` peer installed they log in, and each successful login upgrades the hash to argon2id.

/**
 * Hashes made by other implementations, never by the code under test:
 * - Openwall's crypt_blowfish test vectors (the reference C implementation's own suite, also in
 *   glibc's libxcrypt and John the Ripper), including its 72-byte truncation case;
 * - Python's passlib 1.7.4 with python3-bcrypt 3.2.2 from Debian's packages, made with
 *   `python3 -c "from passlib.hash import bcrypt; print(bcrypt.using(rounds=4, ident='2b').hash('password1'))"`
 *   (ident 2a, 2b and 2y; rounds 12 is what the tutorial's CryptContext writes).
 */
const VECTORS: Array<{ source: string, hash: string, password: string }> = [
  { source: 'crypt_blowfish $2a$', hash: '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', password: 'U*U' },
  { source: 'crypt_blowfish $2a$', hash: '$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK', password: 'U*U*' },
  { source: 'crypt_blowfish $2a$', hash: '$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a', password: 'U*U*U' },
  {
    source: 'crypt_blowfish $2a$, over 72 bytes',
    hash: '$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui',
    password: '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored'
  },
  { source: 'passlib $2b$', hash: '$2b$04$nuP.554qX4ckptRuNh4Z7eJ5uYQSXeFrH350wig3cNzT4xWDH9r1K', password: 'password1' },
  { source: 'passlib $2a$', hash: '$2a$04$ZUovHvrajEswY2/WbitTu.7Qn/dGySytRpNnIUNYp4Rlypi3AKCIK', password: 'password1' },
  { source: 'passlib $2y$', hash: '$2y$04$iALkq0K3RUoVOSXxPyUdieOhcKwVBOz9htRuApVYiM4nl/f.bOm6u', password: 'password1' },
  { source: 'passlib $2b$, non-ASCII', hash: '$2b$04$S42f72KTnmCzQ4aMuF4xVe8rXg7OJw9YWocg9VvjPrOXFalfizH1u', password: 'caf\u00e9' }
]

/** passlib, rounds=12: the cost the tutorial's `CryptContext(schemes=["bcrypt"])` writes. */
const COST_12 = '$2b$12$KrBpmkWxI.XAOYnzyo54t.rSmmikukVXr7UVnUAnu3EjUx52VJpy.'

/**
 * The hash in the tutorial's fake database, whose comment says it is 'password1'. It is not:
 * passlib, python3-bcrypt and node's bcrypt all refuse 'password1' (and 'password', 'secret')
 * against it, so it can only serve as a hash that must NOT let 'password1' in.
 */
const TUTORIAL = '$2b$12$AQyHPwd7p1s.GQvax/A3ve5wMey6NZuDXW1/FVhDpi8s/MV/Fo1LC'

function legacyUser (hash: string, username = 'legacy'): UserRecord {
  return { username, passwordHash: hash, scopes: ['profile'] }
}

function login (app: Awaited<ReturnType<typeof buildApp>>, username: string, password: string) {
  return tokenRequest(app, { grant_type: 'password', username, password })
}

t.test('bcrypt hashes made by other implementations verify through /token', async (t) => {
  const users = new Map(VECTORS.map((v, i) => [`u${i}`, legacyUser(v.hash, `u${i}`)]))
  const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, findUser: (name) => users.get(name) ?? null } })
  for (const [i, { source, password }] of VECTORS.entries()) {
    const ok = await login(app, `u${i}`, password)
    t.equal(ok.statusCode, 200, `${source}: the right password logs in`)
    t.equal(ok.json().token_type, 'Bearer')
    const wrong = await login(app, `u${i}`, password + 'x')
    // The 72-byte case: bcrypt ignores what follows, exactly as the stack that made the hash did.
    t.equal(wrong.statusCode, password.length > 72 ? 200 : 400, `${source}: a wrong password`)
    if (wrong.statusCode === 400) t.same(wrong.json(), { error: 'invalid_grant', error_description: 'Invalid username or password' })
  }
})

t.test('a password of 72 bytes or more is not rehashed: the typed one may not be the one bcrypt hashed', async (t) => {
  // The crypt_blowfish vector's password is 97 bytes; bcrypt compared its first 72.
  const long = VECTORS[3] as { hash: string, password: string }
  const typo = long.password.slice(0, 72) + 'a typo past the 72nd byte'
  const exact72 = long.password.slice(0, 72)
  const short = VECTORS[4] as { hash: string, password: string }
  const users = new Map([['long', legacyUser(long.hash, 'long')], ['short', legacyUser(short.hash, 'short')]])
  const upgrades: string[] = []
  const logs: Array<Record<string, unknown>> = []
  const app = await buildApp(t, {
    server: { logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } },
    plugin: {
      rateLimit: false,
      findUser: (name) => users.get(name) ?? null,
      onPasswordRehash: (user, newHash) => { upgrades.push(user.username); (user as { passwordHash: string }).passwordHash = newHash }
    }
  })
  for (const password of [typo, exact72]) {
    t.equal((await login(app, 'long', password)).statusCode, 200, 'bcrypt lets it in, as the old app did')
  }
  t.equal((await login(app, 'short', short.password)).statusCode, 200)
  const deadline = Date.now() + 5000
  while (upgrades.length === 0 && Date.now() < deadline) await sleep(5)
  await sleep(50)
  t.same(upgrades, ['short'], 'only the password under 72 bytes is rehashed')
  t.equal(users.get('long')?.passwordHash, long.hash, 'the long password keeps its bcrypt hash')
  t.equal((await login(app, 'long', long.password)).statusCode, 200, 'and the real password still logs in')
  t.equal(logs.filter((line) => /rehash skipped: bcrypt compared only the first 72 bytes/.test(String(line.msg))).length, 3)
  t.notOk(logs.some((line) => JSON.stringify(line).includes(long.password.slice(0, 20))), 'no log line holds the password')
})

t.test('a record that keeps its hash under another name logs in as nobody, and says so once', async (t) => {
  // The tutorial's record: the hash in `password`. Mapped, it logs in; as it is, never.
  const row = { username: 'user1', password: VECTORS[4]?.hash as string, disabled: false }
  const logs: Array<Record<string, unknown>> = []
  const app = await buildApp(t, {
    server: { logger: { level: 'warn', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } },
    plugin: {
      rateLimit: false,
      loginThrottle: false,
      findUser: (name) => name === 'user1' ? row as unknown as UserRecord : name === 'mapped' ? legacyUser(row.password, 'mapped') : null
    }
  })
  for (let i = 0; i < 3; i++) t.equal((await login(app, 'user1', 'password1')).statusCode, 400)
  t.equal((await login(app, 'nobody', 'password1')).statusCode, 400)
  t.equal((await login(app, 'mapped', 'password1')).statusCode, 200)
  const told = logs.filter((line) => /without a string `passwordHash`/.test(String(line.msg)))
  t.equal(told.length, 1, 'one warning, however many logins')
  t.notOk(JSON.stringify(told).includes(row.password), 'the hash is not in it')
})

t.test('the tutorial\'s own hash does not match its comment: \'password1\' is refused', async (t) => {
  const app = await buildApp(t, { plugin: { findUser: (name) => name === 'user1' ? legacyUser(TUTORIAL, 'user1') : null } })
  const res = await login(app, 'user1', 'password1')
  t.equal(res.statusCode, 400)
  t.equal(res.json().error, 'invalid_grant')
})

t.test('a successful login upgrades the bcrypt hash to argon2id through onPasswordRehash', async (t) => {
  const user = legacyUser(VECTORS[4]?.hash as string)
  const upgrades: Array<{ user: UserRecord, newHash: string }> = []
  const app = await buildApp(t, {
    plugin: { findUser: (name) => name === 'legacy' ? user : null, onPasswordRehash: (u, newHash) => { upgrades.push({ user: u, newHash }) } }
  })

  t.equal((await login(app, 'legacy', 'wrong')).statusCode, 400)
  await sleep(50)
  t.same(upgrades, [], 'a failed login upgrades nothing')

  t.equal((await login(app, 'legacy', 'password1')).statusCode, 200)
  const deadline = Date.now() + 5000
  while (upgrades.length === 0 && Date.now() < deadline) await sleep(5)
  t.equal(upgrades.length, 1)
  const { user: got, newHash } = upgrades[0] as { user: UserRecord, newHash: string }
  t.equal(got, user, 'the record findUser returned')
  t.match(newHash, /^\$argon2id\$v=19\$m=256,t=2,p=1\$/, 'argon2id with the configured parameters')
  t.equal(await verifyPassword(newHash, 'password1'), true)
  t.equal(needsRehash(newHash, CHEAP), false)

  // The host stores it: the next login uses argon2 and has nothing left to upgrade.
  user.passwordHash = newHash
  t.equal((await login(app, 'legacy', 'password1')).statusCode, 200)
  t.equal((await login(app, 'legacy', 'wrong')).statusCode, 400)
  await sleep(50)
  t.equal(upgrades.length, 1)
})

t.test('hashes that are not $2a$/$2b$/$2y$ bcrypt are refused, never a 500', async (t) => {
  const broken = [
    // crypt_blowfish's marker for hashes made with its sign-extension bug.
    '$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e',
    // cost out of range, short digest, bad alphabet
    '$2b$03$nuP.554qX4ckptRuNh4Z7eJ5uYQSXeFrH350wig3cNzT4xWDH9r1K',
    '$2b$04$nuP.554qX4ckptRuNh4Z7eJ5uYQSXeFrH350wig3cNzT4xWDH9r1',
    '$2b$04$nuP.554qX4ckptRuNh4Z7eJ5uYQSXeFrH350wig3cNzT4xWDH9r1!'
  ]
  const users = new Map(broken.map((hash, i) => [`b${i}`, legacyUser(hash, `b${i}`)]))
  const app = await buildApp(t, { plugin: { rateLimit: false, loginThrottle: false, findUser: (name) => users.get(name) ?? null } })
  for (const name of users.keys()) {
    const res = await login(app, name, name === 'b0' ? '\u00a3' : 'password1')
    t.equal(res.statusCode, 400, name)
    t.equal(res.json().error, 'invalid_grant')
  }
})

t.test('bcrypt verification runs under the same hashing bound: a full pool answers 503', async (t) => {
  let started!: () => void
  const running = new Promise<void>((resolve) => { started = resolve })
  const app = await buildApp(t, {
    plugin: {
      password: { ...CHEAP, maxConcurrent: 1, maxQueue: 0 },
      findUser: async (name) => {
        if (name !== 'slow') return null
        // The getter is read as the bcrypt comparison (about 0.2 s at cost 12) takes the one slot.
        return { username: 'slow', get passwordHash () { started(); return COST_12 } }
      }
    }
  })
  const first = login(app, 'slow', 'password1')
  await running
  const second = await login(app, 'nobody', 'whatever')
  t.equal(second.statusCode, 503)
  t.equal(second.json().error, 'temporarily_unavailable')
  t.equal(second.headers['retry-after'], '1')
  t.equal((await first).statusCode, 200)
})

t.test('bcrypt runs off the event loop: the loop stays idle while a cost-12 hash is checked', async (t) => {
  const app = await buildApp(t, { plugin: { findUser: (name) => name === 'slow' ? legacyUser(COST_12, 'slow') : null } })
  t.equal((await login(app, 'slow', 'password1')).statusCode, 200, 'warm-up: the peer is loaded')
  const before = performance.eventLoopUtilization()
  const started = performance.now()
  t.equal((await login(app, 'slow', 'password1')).statusCode, 200)
  const elapsed = performance.now() - started
  const { utilization } = performance.eventLoopUtilization(before)
  // A JavaScript bcrypt on the main thread keeps the loop busy for the whole comparison (near
  // 1.0); on the thread pool the loop only parses, signs and answers. Generous on a loaded machine.
  t.ok(elapsed > 50, `the comparison took ${elapsed.toFixed(0)} ms`)
  t.ok(utilization < 0.5, `event-loop utilisation ${utilization.toFixed(2)} during the login`)
})
