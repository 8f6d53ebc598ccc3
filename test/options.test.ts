import t from 'tap'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import tokenAuth, { createMemoryStore, type FastifyTokenAuthOptions } from '../lib/index.js'
import { resolveOptions } from '../lib/options/resolve.js'
import { bearer, buildApp, CHEAP, cheapHash, demoUsers, forge, login, SECRET, tokenRequest, validClaims, VALID_HEADER } from './helper.js'

/*
 * Options are checked at registration: every mistake is a FastifyError with a stable code and
 * the name of the option at fault; a weak HS256 secret has a code of its own.
 */

/** A (sub)test: what `t.test` hands its callback. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** Registers with `register` laid over the defaults (undefined removes one) and expects a refusal. */
async function refused (tt: Tap, register: Record<string, unknown>, code: string, option?: string): Promise<void> {
  await tt.rejects(buildApp(tt, { register }), {
    code,
    // The message names the option: its only structured place.
    ...(option === undefined ? {} : { message: new RegExp(`option "${option.replace(/\./g, '\\.')}"`) })
  }, `${JSON.stringify(register, (_k, v: unknown) => (v === undefined ? '<undefined>' : Buffer.isBuffer(v) ? `<Buffer ${v.length}>` : v))} → ${code}`)
}

const INVALID = 'FST_TOKEN_AUTH_INVALID_OPTION'
const WEAK = 'FST_TOKEN_AUTH_WEAK_SECRET'

const invalid: Array<[option: string, register: Record<string, unknown>]> = [
  ['secret', { secret: undefined }],
  ['secret', { secret: null }],
  ['secret', { secret: '' }],
  ['secret', { secret: 2 ** 128 }],
  ['secret', { secret: { key: SECRET } }],
  ['secret', { secret: [SECRET] }],
  ['tokenPath', { tokenPath: 'token' }],
  ['tokenPath', { tokenPath: '' }],
  ['tokenPath', { tokenPath: 42 }],
  ['realm', { realm: 'my"realm' }],
  ['realm', { realm: 'back\\slash' }],
  ['realm', { realm: '' }],
  ['realm', { realm: 'café' }],
  ['realm', { realm: 'line\nbreak' }],
  ['realm', { realm: 7 }],
  ['audience', { audience: '' }],
  ['audience', { audience: [] }],
  ['audience', { audience: ['api', ''] }],
  ['audience', { audience: ['api', 7] }],
  ['audience', { audience: 42 }],
  ['issuer', { issuer: '' }],
  ['issuer', { issuer: 42 }],
  ['defaultClientId', { defaultClientId: '' }],
  ['clockTolerance', { clockTolerance: -1 }],
  ['clockTolerance', { clockTolerance: 301 }],
  ['clockTolerance', { clockTolerance: Number.NaN }],
  ['clockTolerance', { clockTolerance: Infinity }],
  ['clockTolerance', { clockTolerance: '5' }],
  ['accessTokenTtl', { accessTokenTtl: 0 }],
  ['accessTokenTtl', { accessTokenTtl: -900 }],
  ['accessTokenTtl', { accessTokenTtl: 1.5 }],
  ['accessTokenTtl', { accessTokenTtl: '900' }],
  ['accessTokenTtl', { accessTokenTtl: 366 * 24 * 3600 }],
  ['bodyLimit', { bodyLimit: 0 }],
  ['bodyLimit', { bodyLimit: -1 }],
  ['bodyLimit', { bodyLimit: 2 * 1024 * 1024 }],
  ['password', { password: 'argon2id' }],
  ['password', { password: null }],
  ['password', { password: 19456 }],
  ['password.memoryCost', { password: { ...CHEAP, memoryCost: 4 } }],
  ['password.memoryCost', { password: { ...CHEAP, memoryCost: 0 } }],
  ['password.memoryCost', { password: { ...CHEAP, memoryCost: 256.5 } }],
  ['password.timeCost', { password: { ...CHEAP, timeCost: 0 } }],
  ['password.parallelism', { password: { ...CHEAP, parallelism: -1 } }],
  ['password.maxLength', { password: { ...CHEAP, maxLength: 0 } }],
  ['password.maxConcurrent', { password: { ...CHEAP, maxConcurrent: 1.5 } }],
  ['password.maxConcurrent', { password: { ...CHEAP, maxConcurrent: 0 } }],
  ['password.maxQueue', { password: { ...CHEAP, maxQueue: -1 } }],
  ['password.maxQueue', { password: { ...CHEAP, maxQueue: 0.5 } }],
  ['rateLimit', { rateLimit: true }],
  ['rateLimit', { rateLimit: null }],
  ['rateLimit', { rateLimit: 30 }],
  ['rateLimit.max', { rateLimit: { max: 0 } }],
  ['rateLimit.timeWindow', { rateLimit: { timeWindow: -1 } }],
  ['rateLimit.timeWindow', { rateLimit: { timeWindow: '1 minute' } }],
  ['loginThrottle', { loginThrottle: 'on' }],
  ['loginThrottle', { loginThrottle: true }],
  ['loginThrottle', { loginThrottle: null }],
  ['loginThrottle.perUsernameAndIp', { loginThrottle: { perUsernameAndIp: 5 } }],
  ['loginThrottle.perUsernameAndIp.max', { loginThrottle: { perUsernameAndIp: { max: 0 } } }],
  ['loginThrottle.perUsernameAndIp.timeWindow', { loginThrottle: { perUsernameAndIp: { timeWindow: 1.5 } } }],
  ['loginThrottle.perUsername', { loginThrottle: { perUsername: 'yes' } }],
  ['loginThrottle.perUsername', { loginThrottle: { perUsername: null } }],
  ['loginThrottle.perUsername.freeAttempts', { loginThrottle: { perUsername: { freeAttempts: 0 } } }],
  ['loginThrottle.perUsername.maxDelay', { loginThrottle: { perUsername: { maxDelay: -5 } } }],
  ['loginThrottle.perUsername.timeWindow', { loginThrottle: { perUsername: { timeWindow: 0.5 } } }],
  ['loginThrottle.knownSourceTtl', { loginThrottle: { knownSourceTtl: 0 } }],
  ['loginThrottle.knownSourceTtl', { loginThrottle: { knownSourceTtl: 400 * 24 * 3600 } }],
  ['loginThrottle.caseSensitiveUsernames', { loginThrottle: { caseSensitiveUsernames: 'no' } }],
  ['clients', { clients: 'web' }],
  ['clients', { clients: [] }],
  ['clients', { clients: [{}] }],
  ['clients', { clients: [null] }],
  ['clients', { clients: [{ id: '' }] }],
  ['clients', { clients: [{ id: 7 }] }],
  ['clients', { clients: [{ id: 'web' }, { id: 'web' }] }],
  ['clients', { clients: [{ id: 'app', secretHash: '$2b$10$abcdefghijklmnopqrstuuJ0hbsPHWNvPxe6zCkZ0Zn7J1Th0r6Ka' }] }],
  ['clients', { clients: [{ id: 'app', secretHash: 'plain-text-secret' }] }],
  ['clients', { clients: [{ id: 'app', secretHash: 42 }] }],
  ['findUser', { findUser: 'users' }],
  ['findUser', { findUser: null }],
  ['onPasswordRehash', { onPasswordRehash: true }],
  ['onAuthEvent', { onAuthEvent: 'log' }],
  ['store', { store: {} }],
  ['store', { store: 'redis' }],
  ['store', { store: null }],
  // A store made before known sources existed must say so at registration, not at the first login.
  ['store', { store: { ...createMemoryStore(), rememberSource: undefined, isKnownSource: undefined } }]
]

t.test('every bad option is refused with FST_TOKEN_AUTH_INVALID_OPTION naming it', async (t) => {
  for (const [option, register] of invalid) await refused(t, register, INVALID, option)
})

t.test('the error is a FastifyError thrown at registration, before the app is ready', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(tokenAuth, { secret: SECRET, tokenPath: 'nope' })
  const error = await app.ready().then(() => undefined, (e: unknown) => e)
  t.match(error, { name: 'FastifyError', code: INVALID, statusCode: 500 })
})

t.test('options that are not an object are refused', async (t) => {
  for (const options of [null, 'secret', 42]) {
    t.throws(() => resolveOptions(options as unknown as FastifyTokenAuthOptions), { code: INVALID, message: /option "options"/ })
  }
})

t.test('a weak secret is refused with FST_TOKEN_AUTH_WEAK_SECRET', async (t) => {
  const weak: unknown[] = [
    'short',
    'x9$Kq2!vLp8#Zr4@Tm6&Wn1*Yb7^Hc3', // 31 bytes
    randomBytes(31),
    randomBytes(16).toString('hex').slice(0, 31),
    'your-secret-key',
    'secret',
    'your-super-secret-key-change-this-in-production-please',
    'my_jwt_secret_key_change_me_in_production',
    'SUPER-SECRET-KEY-CHANGE-THIS-PLEASE-CHANGE-ME',
    'change-me-change-me-change-me-change-me',
    'a'.repeat(64),
    'abababababababababababababababab',
    Buffer.alloc(32),
    Buffer.alloc(64, 7)
  ]
  for (const secret of weak) await refused(t, { secret }, WEAK)
})

t.test('a placeholder is refused whatever its length', async (t) => {
  await refused(t, { secret: 'your-super-secret-key-change-this-in-production-please' + '-please'.repeat(20) }, WEAK)
})

t.test('strong secrets are accepted', async (t) => {
  t.test('a 32-byte random Buffer', async (t) => {
    const app = await buildApp(t, { register: { secret: randomBytes(32) } })
    const token = await login(app)
    t.equal((await app.inject({ url: '/protected', headers: bearer(token) })).statusCode, 200)
  })
  t.test('a generated base64url string (43 characters)', async (t) => {
    const app = await buildApp(t, { register: { secret: randomBytes(32).toString('base64url') } })
    t.equal((await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })).statusCode, 200)
  })
  t.test('32 bytes exactly, counted in bytes: 16 two-byte characters', async (t) => {
    const secret = 'ñöüéàçøåßæœþðłżš'
    t.equal(Buffer.byteLength(secret), 32)
    await buildApp(t, { register: { secret } })
  })
})

t.test('the token is signed with the configured secret', async (t) => {
  const secret = randomBytes(32)
  const app = await buildApp(t, { register: { secret } })
  const ours = forge(VALID_HEADER, validClaims(), secret)
  const theirs = forge(VALID_HEADER, validClaims(), SECRET)
  t.equal((await app.inject({ url: '/protected', headers: bearer(ours) })).statusCode, 200)
  t.equal((await app.inject({ url: '/protected', headers: bearer(theirs) })).statusCode, 401)
})

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

t.test('the caller\'s options object is not mutated', async (t) => {
  const users = await demoUsers()
  const clientHash = await cheapHash('client-secret')
  const build = () => ({
    secret: SECRET,
    findUser: async (username: string) => users.get(username) ?? null,
    issuer: 'https://issuer.example',
    audience: ['api', 'other'],
    clients: [{ id: 'web' }, { id: 'backend', secretHash: clientHash }],
    password: { ...CHEAP, maxConcurrent: 2 },
    rateLimit: { max: 10 },
    loginThrottle: { perUsernameAndIp: { max: 3 }, perUsername: { freeAttempts: 4 } }
  })
  const options = deepFreeze(build())
  // Every level frozen: a write anywhere throws (ES modules are strict), so registration fails.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tokenAuth, options)
  app.get('/protected', { preHandler: app.authenticate }, async (request) => ({ sub: request.user.sub }))
  await app.ready()
  const { findUser, ...rest } = options
  const { findUser: _f, ...expected } = build()
  t.same(rest, expected, 'the options read the same after registration')
  t.equal(options.findUser, findUser)

  const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1', client_id: 'web' })
  t.equal(res.statusCode, 200, 'and the frozen options work')
  t.equal((await app.inject({ url: '/protected', headers: bearer(res.json().access_token) })).statusCode, 200)
})

t.test('the same frozen options serve two apps', async (t) => {
  const options = deepFreeze({ secret: SECRET, findUser: async () => null, password: { ...CHEAP }, loginThrottle: { perUsernameAndIp: { max: 1 } } })
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(tokenAuth, options)
    await app.ready()
    // Each app counts on its own store: the first app's failure does not throttle the second.
    t.equal((await tokenRequest(app, { grant_type: 'password', username: 'x', password: 'y' })).json().error, 'invalid_grant')
  }
})

t.test('without findUser there is no /token route, but authenticate works', async (t) => {
  const app = await buildApp(t, { register: { findUser: undefined } })
  const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(res.statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/token' })).statusCode, 404)

  // A token signed elsewhere with the same secret.
  const token = forge(VALID_HEADER, validClaims({ sub: 'svc-7', scope: 'profile admin' }))
  const ok = await app.inject({ url: '/protected', headers: bearer(token) })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { sub: 'svc-7', scope: ['profile', 'admin'] })
  t.equal((await app.inject({ url: '/admin', headers: bearer(token) })).statusCode, 200)
  const none = await app.inject({ url: '/protected' })
  t.equal(none.statusCode, 401)
  t.match(none.headers['www-authenticate'], /^Bearer realm="api"/)
  const wrong = await app.inject({ url: '/protected', headers: bearer(forge(VALID_HEADER, validClaims(), randomBytes(32))) })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.headers['www-authenticate'], /error="invalid_token"/)
})

t.test('defaults and accepted edge values', async (t) => {
  const resolved = resolveOptions({ secret: SECRET })
  t.match(resolved, {
    tokenPath: '/token',
    accessTokenTtl: 900,
    clockTolerance: 5,
    realm: 'api',
    defaultClientId: 'public',
    clients: undefined,
    password: { memoryCost: 19456, timeCost: 2, parallelism: 1, maxLength: 1024 },
    rateLimit: { max: 30, timeWindow: 60_000 },
    perUsernameAndIp: { max: 5, timeWindow: 15 * 60_000 },
    perUsername: { freeAttempts: 10, maxDelay: 15 * 60_000, timeWindow: 12 * 3_600_000 },
    knownSourceTtl: 30 * 24 * 3_600_000,
    caseSensitiveUsernames: false,
    bodyLimit: 4096
  })
  t.match(resolveOptions({ secret: SECRET, loginThrottle: { knownSourceTtl: 3600, caseSensitiveUsernames: true } }), { knownSourceTtl: 3_600_000, caseSensitiveUsernames: true })
  t.equal(resolved.password.maxQueue, 1000, 'waiting logins hold requests, not argon2 memory: bounded by memory, not by the CPUs')
  t.equal(resolved.password.maxWait, 2000)
  t.same(resolveOptions({ secret: SECRET, clockTolerance: 0 }).clockTolerance, 0)
  t.same(resolveOptions({ secret: SECRET, clockTolerance: 300 }).clockTolerance, 300)
  t.equal(resolveOptions({ secret: SECRET, password: { maxQueue: 0 } }).password.maxQueue, 0, 'no queue at all is allowed')
  t.equal(resolveOptions({ secret: SECRET, loginThrottle: false }).perUsername, false)
  t.equal(resolveOptions({ secret: SECRET, loginThrottle: false }).perUsernameAndIp, false)
  t.equal(resolveOptions({ secret: SECRET, rateLimit: false }).rateLimit, false)
  t.same(resolveOptions({ secret: SECRET, audience: 'api' }).audience, 'api')
})

t.test('maxConcurrent follows UV_THREADPOOL_SIZE when set, leaving one CPU to the event loop', async (t) => {
  const saved = process.env.UV_THREADPOOL_SIZE
  t.teardown(() => {
    if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE
    else process.env.UV_THREADPOOL_SIZE = saved
  })
  let cpus = 16
  t.capture(os, 'availableParallelism', () => cpus)
  process.env.UV_THREADPOOL_SIZE = '12'
  t.equal(resolveOptions({ secret: SECRET }).password.maxConcurrent, 12)
  process.env.UV_THREADPOOL_SIZE = '6.5'
  t.equal(resolveOptions({ secret: SECRET }).password.maxConcurrent, 6, 'a whole number, as libuv reads it')
  process.env.UV_THREADPOOL_SIZE = 'lots'
  t.equal(resolveOptions({ secret: SECRET }).password.maxConcurrent, 4, 'libuv\'s default pool size')
  // argon2 keeps a CPU busy: a hash on every CPU would leave the event loop waiting for one.
  cpus = 4
  t.equal(resolveOptions({ secret: SECRET }).password.maxConcurrent, 3)
  t.equal(resolveOptions({ secret: SECRET }).password.maxQueue, 1000, 'the queue does not follow the CPUs')
  cpus = 2
  t.equal(resolveOptions({ secret: SECRET }).password.maxConcurrent, 1)
  cpus = 1
  process.env.UV_THREADPOOL_SIZE = '12'
  t.equal(resolveOptions({ secret: SECRET }).password.maxConcurrent, 1, 'never none')
})

t.test('tokenPath and realm take effect', async (t) => {
  const app = await buildApp(t, { plugin: { tokenPath: '/oauth/token', realm: 'my api' } })
  t.equal((await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })).statusCode, 404)
  t.equal((await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' }, {}, '/oauth/token')).statusCode, 200)
  t.match((await app.inject('/protected')).headers['www-authenticate'], /^Bearer realm="my api"/)
})
