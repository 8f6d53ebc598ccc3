/*
 * The account routes of the PostgreSQL example: sign-up, password change, and disabling a user.
 * Bodies are checked by JSON schema (a bad one is a 400, never a 500), and the two routes that
 * hash or check a password are limited per address, since each costs an argon2 hash. They hash
 * through the plugin's `app.passwordHashing`: the plugin's parameters, and the same bound on
 * hashing as logins, so that sign-ups from many addresses cannot queue hashes without limit; a
 * full pool answers 503 with Retry-After (FST_TOKEN_AUTH_HASHING_BUSY).
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { normalizeUsername, passwordProblem, type Users } from './users.js'

export interface AccountOptions {
  users: Users
  /** The plugin's password.maxLength: no password may be set that login would refuse. */
  maxPasswordLength: number
  commonPasswords: Set<string>
  /** Sign-ups and password changes per address; `false` for none (tests only). */
  rateLimit: { max: number, timeWindow: number } | false
}

function refuse (reply: FastifyReply, status: number, error: string, description: string) {
  return reply.code(status).send({ error, error_description: description })
}

export async function accountRoutes (app: FastifyInstance, options: AccountOptions): Promise<void> {
  const { users, maxPasswordLength, commonPasswords } = options
  // global: false: only the routes below that ask for it are limited.
  await app.register(rateLimit, { global: false })
  const limited = options.rateLimit === false ? {} : { rateLimit: options.rateLimit }
  // Bounds the work a body can cause before it is refused; the rules themselves are checked below.
  const password = { type: 'string', minLength: 1, maxLength: maxPasswordLength }

  app.post<{ Body: { username: string, password: string } }>('/signup', {
    config: limited,
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
    if (normalizeUsername(username) === undefined) {
      return refuse(reply, 400, 'invalid_username', 'A username is 3 to 32 letters, digits, ".", "_" or "-"')
    }
    const problem = passwordProblem(password, username, maxPasswordLength, commonPasswords)
    if (problem !== undefined) return refuse(reply, 400, 'invalid_password', problem)
    // Hashed before the name is tried, so a taken name answers no faster than a free one. The
    // answer itself must differ (the person signing up needs to know); the per-address limit
    // keeps that from becoming a fast way to list accounts.
    const hash = await app.passwordHashing.hash(password)
    if (!await users.create(username, hash)) return refuse(reply, 409, 'username_taken', 'This username is taken')
    return reply.code(201).send({ username })
  })

  app.post<{ Body: { oldPassword: string, newPassword: string } }>('/me/password', {
    config: limited,
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
    const user = await users.byId(request.user.sub)
    // A stolen access token alone must not be enough to take the account over (ASVS 5.0
    // 6.2.3): the old password is checked too, and a wrong one is limited like a login.
    if (user === null || user.disabled === true || !await app.passwordHashing.verify(user.passwordHash, request.body.oldPassword)) {
      return refuse(reply, 400, 'invalid_password', 'The current password is wrong')
    }
    const problem = passwordProblem(request.body.newPassword, user.username, maxPasswordLength, commonPasswords)
    if (problem !== undefined) return refuse(reply, 400, 'invalid_password', problem)
    await users.setPasswordHash(request.user.sub, await app.passwordHashing.hash(request.body.newPassword))
    // Every refresh token and access token of the user ends, this one too (ASVS 5.0 7.4.3):
    // whoever knew the old password is logged out everywhere.
    await app.revokeUserTokens(request.user.sub)
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
