/*
 * The hand-written peer: what a Fastify user writes without this plugin, following the
 * @fastify/jwt README. A /token that looks the user up, verifies the password with argon2 (the
 * same argon2id parameters as the plugin's defaults) and signs a token; a /protected behind the
 * README's `authenticate` hook (`request.jwtVerify()`); the same /public. No bound on hashing, no
 * throttling, no revocation: the obvious code, so the bench can say what the plugin's extra work
 * and its bounds cost, or save, next to it.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import formbody from '@fastify/formbody'
import jwt from '@fastify/jwt'
import argon2 from 'argon2'

type Env = Record<string, string | undefined>

export async function buildPeer (env: Env): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: env.LOG_LEVEL ?? 'info' } })
  await app.register(jwt, { secret: env.JWT_SECRET ?? 'a-secret-for-the-bench-peer-only-0123456789' })
  await app.register(formbody)

  const users = new Map([
    ['user1', await argon2.hash('password1', { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 })]
  ])

  // The README's decorator, as users copy it.
  async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      await request.jwtVerify()
    } catch (err) {
      reply.send(err)
    }
  }
  app.decorate('authenticate', authenticate)

  app.post('/token', async (request, reply) => {
    const { username, password } = request.body as { username?: string, password?: string }
    const hash = username === undefined ? undefined : users.get(username)
    if (hash === undefined || password === undefined || !await argon2.verify(hash, password)) {
      return reply.code(400).send({ error: 'invalid_grant' })
    }
    const accessToken = app.jwt.sign({ sub: username, scope: 'profile' }, { expiresIn: '15m' })
    return { access_token: accessToken, token_type: 'Bearer', expires_in: 900 }
  })
  app.get('/public', async () => ({ message: 'Hello, world!' }))
  app.get('/protected', { onRequest: [authenticate] }, async () => ({ message: 'Hello, authenticated user!' }))
  return app
}
