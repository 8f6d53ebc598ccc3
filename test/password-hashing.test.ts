import t from 'tap'
import argon2 from 'argon2'
import Fastify, { type FastifyInstance } from 'fastify'
import tokenAuth, { hashPassword, type FastifyTokenAuthOptions, type UserRecord } from '../lib/index.js'
import { CHEAP, SECRET, tokenRequest } from './helper.js'

/*
 * `fastify.passwordHashing`: the plugin's hashing for a host's own routes (sign-up, password
 * change), with the plugin's argon2id parameters and within the same bound as logins. A flood of
 * sign-ups cannot queue hashes without limit beside the logins, nor take the slots the bound
 * keeps for them, and a full pool is answered 503 with Retry-After, never 500.
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** The plugin, and a host's sign-up and password-check routes built on `passwordHashing`. */
async function hostApp (t: Tap, plugin: Partial<FastifyTokenAuthOptions> = {}): Promise<{ app: FastifyInstance, users: Map<string, UserRecord> }> {
  const users = new Map<string, UserRecord>()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, {
    secret: SECRET,
    rateLimit: false,
    loginThrottle: false,
    password: { ...CHEAP },
    findUser: (username) => users.get(username) ?? null,
    ...plugin
  } as FastifyTokenAuthOptions)
  app.post<{ Body: { username: string, password: string } }>('/signup', async (request, reply) => {
    const { username, password } = request.body
    users.set(username, { username, passwordHash: await app.passwordHashing.hash(password), scopes: [] })
    return await reply.code(201).send({ username })
  })
  app.post<{ Body: { username: string, password: string } }>('/check', async (request) => {
    const { username, password } = request.body
    return { ok: await app.passwordHashing.verify(users.get(username)?.passwordHash, password) }
  })
  await app.ready()
  return { app, users }
}

const signUp = (app: FastifyInstance, username: string, password: string) =>
  app.inject({ method: 'POST', url: '/signup', payload: { username, password } })

t.test('a password hashed by a host route has the plugin\'s parameters, verifies, and logs in at /token', async (t) => {
  const { app, users } = await hostApp(t, { password: { memoryCost: 512, timeCost: 3, parallelism: 1 } })
  t.equal((await signUp(app, 'zoe', 'a long passphrase')).statusCode, 201)
  t.match(users.get('zoe')?.passwordHash, /^\$argon2id\$v=19\$m=512,t=3,p=1\$/, 'argon2id with the plugin\'s parameters')
  const check = async (username: string, password: string) => (await app.inject({ method: 'POST', url: '/check', payload: { username, password } })).json()
  t.same(await check('zoe', 'a long passphrase'), { ok: true })
  t.same(await check('zoe', 'a wrong passphrase'), { ok: false })
  t.same(await check('nobody', 'a long passphrase'), { ok: false }, 'no hash: false, after the same work as a hash')
  const login = await tokenRequest(app, { grant_type: 'password', username: 'zoe', password: 'a long passphrase' })
  t.equal(login.statusCode, 200, 'the token endpoint accepts the hash')
})

t.test('host hashing shares the logins\' bound: a full pool answers the host route 503 with Retry-After, and the login too', async (t) => {
  const { app } = await hostApp(t, { password: { ...CHEAP, maxConcurrent: 1, maxQueue: 0 } })
  // From here, the first hash holds the only slot until released; nothing may queue.
  const hash = argon2.hash
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  let holding!: () => void
  const holdingSlot = new Promise<void>((resolve) => { holding = resolve })
  let hashes = 0
  t.capture(argon2, 'hash', async (...args: Parameters<typeof hash>) => {
    if (++hashes === 1) {
      holding()
      await held
    }
    return await hash(...args)
  })
  const before = hashes
  const first = signUp(app, 'first', 'a long passphrase')
  await holdingSlot
  const second = await signUp(app, 'second', 'another passphrase')
  t.equal(second.statusCode, 503)
  t.equal(second.headers['retry-after'], '1')
  t.match(second.json(), { statusCode: 503, code: 'FST_TOKEN_AUTH_HASHING_BUSY', message: 'The server is busy; retry later' })
  t.notMatch(second.body, /at |\.ts:|\.js:/, 'no stack trace')
  const login = await tokenRequest(app, { grant_type: 'password', username: 'first', password: 'a long passphrase' })
  t.equal(login.statusCode, 503, 'a login waits on the same slot: refused while a sign-up holds it')
  t.equal(login.json().error, 'temporarily_unavailable')
  release()
  t.equal((await first).statusCode, 201)
  t.equal(hashes - before, 1, 'the refused sign-up never hashed')
  t.equal((await signUp(app, 'third', 'a third passphrase')).statusCode, 201, 'served again once the slot is free')
})

t.test('a sign-up flood: at most maxConcurrent + maxQueue hash, the rest are refused at once', async (t) => {
  const { app } = await hostApp(t, { password: { memoryCost: 19456, timeCost: 4, parallelism: 1, maxConcurrent: 1, maxQueue: 2, maxWait: 60_000 } })
  const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => await signUp(app, `user${i}`, 'a long passphrase')))
  t.equal(answers.filter((res) => res.statusCode === 201).length, 3)
  t.equal(answers.filter((res) => res.statusCode === 503 && res.headers['retry-after'] === '1').length, 17)
})

t.test('a host that hashes an empty password gets the TypeError, not a busy answer', async (t) => {
  const { app } = await hostApp(t)
  await t.rejects(app.passwordHashing.hash(''), { name: 'TypeError', message: 'password must be a non-empty string' })
})

t.test('not there in verify-only mode (no findUser: no hashing at all)', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, { secret: SECRET })
  await app.ready()
  t.equal(app.hasDecorator('passwordHashing'), false)
})

t.test('verify takes hashes from hashPassword and legacy ones alike', async (t) => {
  const { app, users } = await hostApp(t)
  users.set('old', { username: 'old', passwordHash: await hashPassword('old passphrase', { memoryCost: 256, timeCost: 1, parallelism: 1 }), scopes: [] })
  t.same((await app.inject({ method: 'POST', url: '/check', payload: { username: 'old', password: 'old passphrase' } })).json(), { ok: true })
})
