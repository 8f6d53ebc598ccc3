/*
 * The account routes of the PostgreSQL example: sign-up, password change, and disabling a user.
 * Bodies are checked by JSON schema (a bad one is a 400, never a 500), and the two routes that
 * hash or check a password are limited, since each costs an argon2 hash: sign-ups per address,
 * password changes per account. They hash through the plugin's `app.passwordHashing`: the
 * plugin's parameters, and the same bound on hashing as logins, so that sign-ups from many
 * addresses cannot queue hashes without limit; a full pool answers 503 with Retry-After
 * (FST_TOKEN_AUTH_HASHING_BUSY).
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { normalizeUsername, passwordProblem, RESERVED_USERNAMES, type Users } from './users.js'

/** A limit of @fastify/rate-limit: `max` requests per `timeWindow` milliseconds. */
export interface Limit {
  max: number
  timeWindow: number
}

export interface AccountOptions {
  users: Users
  /** The plugin's password.maxLength: no password may be set that login would refuse. */
  maxPasswordLength: number
  commonPasswords: Set<string>
  /**
   * Sign-ups per address (IPv6 addresses by /64), and password changes per account; `false` for
   * none (tests only). Kept in this process's memory: with several instances, each counts its own.
   */
  rateLimit: { signUp: Limit, passwordChange: Limit } | false
}

function refuse (reply: FastifyReply, status: number, error: string, description: string) {
  return reply.code(status).send({ error, error_description: description })
}

export async function accountRoutes (app: FastifyInstance, options: AccountOptions): Promise<void> {
  const { users, maxPasswordLength, commonPasswords } = options
  // global: false: only the routes below that ask for it are limited.
  await app.register(rateLimit, { global: false })
  const limits = options.rateLimit
  const signUpLimit = limits === false ? {} : { rateLimit: { ...limits.signUp, ipv6Subnet: 64 } }
  // Per account, after `authenticate` (the preHandler hook runs after the route's own): the
  // current password cannot be guessed here faster than at a login, from however many addresses.
  const changeLimit = limits === false
    ? {}
    : { rateLimit: { ...limits.passwordChange, hook: 'preHandler' as const, keyGenerator: (request: { user: { sub: string } }) => `account:${request.user.sub}` } }
  // Bounds the work a body can cause before it is refused; the rules themselves are checked below.
  const password = { type: 'string', minLength: 1, maxLength: maxPasswordLength }
  // Room for two passwords of maxPasswordLength characters of up to 4 UTF-8 bytes each, no more.
  const bodyLimit = 16_384

  // The refusals of these routes in one shape, the token endpoint's (RFC 6749 §5.2): bodies that
  // fail their schema, limits, and a database or hashing pool that cannot answer now (503 with
  // Retry-After, as at the token endpoint).
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode ?? 500
    if (status === 503) return refuse(reply.header('retry-after', '1'), 503, 'temporarily_unavailable', 'The service is busy or unavailable; retry later')
    if (status === 429) return refuse(reply, 429, 'too_many_requests', error.message)
    // A body that fails its schema, is too large, or is not JSON.
    if (status < 500 && !String(error.code).startsWith('FST_TOKEN_AUTH_')) return refuse(reply, status, 'invalid_request', error.message)
    // The bearer check's answers (their WWW-Authenticate already set) and anything unforeseen:
    // the app's own handler.
    throw error
  })

  app.post<{ Body: { username: string, password: string } }>('/signup', {
    config: signUpLimit,
    bodyLimit,
    schema: {
      summary: 'Create an account',
      body: {
        type: 'object',
        required: ['username', 'password'],
        additionalProperties: false,
        properties: { username: { type: 'string', minLength: 1, maxLength: 64 }, password }
      }
    }
  }, async (request, reply) => {
    const { username, password } = request.body
    const normalized = normalizeUsername(username)
    if (normalized === undefined) {
      return refuse(reply, 400, 'invalid_username', 'A username is 3 to 32 letters, digits, ".", "_" or "-"')
    }
    const problem = passwordProblem(password, username, maxPasswordLength, commonPasswords)
    if (problem !== undefined) return refuse(reply, 400, 'invalid_password', problem)
    // Hashed before the name is tried, so a taken name answers no faster than a free one. The
    // answer itself must differ (the person signing up needs to know); the per-address limit
    // keeps that from becoming a fast way to list accounts. "admin" is ADMIN_PASSWORD's alone,
    // in every form that normalises to it, whether or not it exists yet.
    const hash = await app.passwordHashing.hash(password)
    if (RESERVED_USERNAMES.has(normalized) || !await users.create(username, hash)) return refuse(reply, 409, 'username_taken', 'This username is taken')
    return reply.code(201).send({ username })
  })

  app.post<{ Body: { oldPassword: string, newPassword: string } }>('/me/password', {
    config: changeLimit,
    bodyLimit,
    preHandler: app.authenticate,
    schema: {
      summary: 'Change your password; every session of yours ends',
      body: {
        type: 'object',
        required: ['oldPassword', 'newPassword'],
        additionalProperties: false,
        properties: { oldPassword: password, newPassword: password }
      }
    }
  }, async (request, reply) => {
    const { sub } = request.user
    const user = await users.byId(sub)
    if (user === null || user.disabled === true) return refuse(reply, 400, 'invalid_password', 'The current password is wrong')
    // The new password's rules first: a weak new password is refused whatever the old one, so
    // the answer never tells a right old password from a wrong one without changing anything.
    const problem = passwordProblem(request.body.newPassword, user.username, maxPasswordLength, commonPasswords)
    if (problem !== undefined) return refuse(reply, 400, 'invalid_password', problem)
    // A stolen access token alone must not be enough to take the account over (ASVS 5.0
    // 6.2.3): the old password is checked too, limited per account above.
    if (!await app.passwordHashing.verify(user.passwordHash, request.body.oldPassword)) {
      request.log.info({ userId: sub }, 'password change refused: the current password is wrong')
      return refuse(reply, 400, 'invalid_password', 'The current password is wrong')
    }
    const newHash = await app.passwordHashing.hash(request.body.newPassword)
    // Every refresh token and access token of the user ends, this one too (ASVS 5.0 7.4.3), once
    // before the new hash is written and once after. Should the database fail before the write,
    // everyone is logged out and the password is unchanged: a retry starts again with the old
    // password. A login with the old password between the two ends with the second.
    await app.revokeUserTokens(sub)
    // Only over the hash that was checked: of two changes at once, one wins and the other is told.
    if (!await users.setPasswordHash(sub, newHash, user.passwordHash)) {
      return refuse(reply, 409, 'password_changed', 'The password was changed meanwhile; log in again')
    }
    await app.revokeUserTokens(sub)
    request.log.info({ userId: sub }, 'password changed; every session ended')
    return reply.code(204).send()
  })

  app.post<{ Params: { username: string } }>('/admin/users/:username/disable', {
    preHandler: [app.authenticate, app.requireScopes('admin')],
    schema: {
      summary: 'Disable a user; their tokens stop working at once',
      params: { type: 'object', properties: { username: { type: 'string', maxLength: 64 } } }
    }
  }, async (request, reply) => {
    const id = await users.disable(request.params.username)
    if (id === undefined) return refuse(reply, 404, 'not_found', 'No such user')
    // Disabled first, so that no new login or refresh succeeds (findUser sees `disabled`), then
    // every token revoked: with revocable access tokens they stop working at once.
    await app.revokeUserTokens(id)
    return reply.code(204).send()
  })
}
