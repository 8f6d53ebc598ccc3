import { expect, test } from 'tstyche'
import Fastify, { type FastifyRequest, type preHandlerAsyncHookHandler } from 'fastify'
// By name, as a user imports it: what is checked is the shipped .d.ts, not lib/.
import { Cluster, Redis } from 'ioredis'
import tokenAuth, {
  createMemoryStore,
  createRedisStore,
  fastifyTokenAuth,
  hashPassword,
  needsRehash,
  notFoundHandler,
  requestLogSerializer,
  verifyPassword,
  type AccessTokenClaims,
  type PasswordHashing,
  type AuthStore,
  type AuthUser,
  type OAuthErrorCode,
  type RedisClient,
  type TokenResponse,
  type UserRecord
} from 'fastify-token-auth'

// What a host adds to its tokens, declared once for the whole app.
declare module 'fastify-token-auth' {
  interface CustomClaims {
    tenant: string
  }
}

const app = Fastify()
const secret = 'a-random-secret-of-at-least-32-bytes!'
const findUser = async (username: string): Promise<UserRecord | null> => (username === 'u' ? { username, passwordHash: '$argon2id$...' } : null)

test('the options', () => {
  expect(app.register(tokenAuth, { secret, findUser, claims: () => ({ tenant: 't1' }) })).type.not.toRaiseError()
  expect(app.register(fastifyTokenAuth, {
    secret: Buffer.from(secret),
    tokenPath: '/login',
    scopes: { admin: 'Administer' },
    openapi: false,
    rateLimit: { max: 10, timeWindow: 60_000 },
    loginThrottle: false,
    claims: async (user, request) => ({ tenant: `${user.username}@${request.hostname}` })
  })).type.not.toRaiseError()

  // The README's quick start: an environment variable is `string | undefined`.
  expect(app.register(tokenAuth, { secret: process.env.JWT_SECRET, findUser })).type.not.toRaiseError()
  expect(app.register(tokenAuth, { keys: [{ kid: 'k1', alg: 'HS256', key: secret }], findUser })).type.not.toRaiseError()
  expect(app.register(tokenAuth, { jwksUrl: 'https://issuer.example/.well-known/jwks.json' })).type.not.toRaiseError()

  // Exactly one key source.
  expect(app.register(tokenAuth, {})).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, keys: [{ kid: 'k1', alg: 'HS256', key: secret }] })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, jwksUrl: 'https://issuer.example/jwks' })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret: 42 })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, accessTokenTtl: '15m' })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, tokenPth: '/login' })).type.toRaiseError('tokenPth')
  expect(app.register(tokenAuth, { secret, scopes: { admin: true } })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, openapi: 'yes' })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, findUser, refreshTokens: true, browserSessions: { origins: ['https://app.example.com'], deviceLockout: { max: 3 } } })).type.not.toRaiseError()
  expect(app.register(tokenAuth, { secret, refreshTokens: true, browserSessions: { origins: 'https://app.example.com' } })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, refreshTokens: true, browserSessions: { deviceCookie: 'on' } })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, findUser: async () => ({ username: 'u' }) })).type.toRaiseError('passwordHash')
  // The extra claims must be the ones declared in CustomClaims.
  expect(app.register(tokenAuth, { secret, claims: () => ({ tenants: 't1' }) })).type.toRaiseError()
  expect(app.register(tokenAuth, { secret, claims: () => ({ tenant: 1 }) })).type.toRaiseError()
})

test('the decorators', () => {
  expect(app.authenticate).type.toBe<preHandlerAsyncHookHandler>()
  expect(app.requireScopes('admin', 'profile')).type.toBe<preHandlerAsyncHookHandler>()
  expect(app.requireScopes(1)).type.toRaiseError()
  expect(app.get('/', { preHandler: [app.authenticate, app.requireScopes('admin')] }, async () => 'ok')).type.not.toRaiseError()
  expect(app.passwordHashing).type.toBe<PasswordHashing>()
  expect(app.passwordHashing.hash('a passphrase')).type.toBe<Promise<string>>()
  expect(app.passwordHashing.verify(undefined, 'a passphrase')).type.toBe<Promise<boolean>>()
  expect(app.passwordHashing.hash(Buffer.from('x'))).type.toRaiseError()
})

test('request.user', () => {
  app.get('/me', { preHandler: app.authenticate }, async (request) => {
    expect(request.user).type.toBe<AuthUser>()
    expect(request.user.sub).type.toBe<string>()
    expect(request.user.clientId).type.toBe<string>()
    expect(request.user.scope).type.toBe<readonly string[]>()
    expect(request.user.claims.tenant).type.toBe<string>()
    expect(request.user.claims.client_id).type.toBe<string>()
    expect(request.user.claims.exp).type.toBe<number>()
    expect(request.user.claims.scope).type.toBe<string | undefined>()
    // An undeclared claim is there at run time only if some token carries it: unknown until checked.
    expect(request.user.claims.role).type.toBe<unknown>()

    expect(request.user.scope.push('admin')).type.toRaiseError('push')
    expect(request.user.claims.role.toUpperCase()).type.toRaiseError()
    expect(request.user.claims.scope.split(' ')).type.toRaiseError()
    expect(request.user.claims.tenant.push).type.toRaiseError()
    expect(request.user.name).type.toRaiseError('name')
    expect((request.user.sub = 42)).type.toRaiseError()
    return request.user.sub
  })
  expect<FastifyRequest['user']>().type.toBe<AuthUser>()
})

test('AuthUser and AccessTokenClaims', () => {
  expect<AuthUser<{ role: 'admin' | 'user' }>['claims']['role']>().type.toBe<'admin' | 'user'>()
  expect<AuthUser<{ role: 'admin' }>['claims']['sub']>().type.toBe<string>()
  expect<AccessTokenClaims['jti']>().type.toBe<string>()
  expect<AuthUser<{ role: string }>>().type.not.toBeAssignableTo<AuthUser<{ role: number }>>()
})

test('the exported helpers', () => {
  expect(hashPassword('pw')).type.toBe<Promise<string>>()
  expect(hashPassword('pw', { memoryCost: 19456, timeCost: 2, parallelism: 1 })).type.not.toRaiseError()
  expect(hashPassword('pw', { memory: 19456 })).type.toRaiseError('memory')
  expect(hashPassword(Buffer.from('pw'))).type.toRaiseError()
  expect(verifyPassword('$argon2id$...', 'pw')).type.toBe<Promise<boolean>>()
  expect(needsRehash('$argon2id$...')).type.toBe<boolean>()
  expect(createMemoryStore()).type.toBe<AuthStore>()
  expect<TokenResponse['token_type']>().type.toBe<'Bearer'>()
  expect<'invalid_grant'>().type.toBeAssignableTo<OAuthErrorCode>()
  expect<'not_a_code'>().type.not.toBeAssignableTo<OAuthErrorCode>()
  expect(app.setNotFoundHandler(notFoundHandler)).type.not.toRaiseError()
  expect(Fastify({ logger: { serializers: { req: requestLogSerializer } } })).type.not.toRaiseError()
})

test('the Redis store takes an ioredis client or Cluster through a structural type', () => {
  expect(createRedisStore({ client: new Redis({ lazyConnect: true }) })).type.toBe<AuthStore>()
  expect(createRedisStore({ client: new Cluster([], { lazyConnect: true }), prefix: 'app:' })).type.toBe<AuthStore>()
  expect<Redis>().type.toBeAssignableTo<RedisClient>()
  expect<Cluster>().type.toBeAssignableTo<RedisClient>()
  // Something that is not a Redis client is refused.
  expect(createRedisStore({ client: { get: async () => null } })).type.toRaiseError()
})
