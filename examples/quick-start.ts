// quick-start.ts: POST /token issues tokens, GET /me needs one.
// Run it with `node quick-start.ts` (Node.js 22.18+) or `npx tsx quick-start.ts`.
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import tokenAuth, { hashPassword, notFoundHandler, requestLogSerializer, type UserRecord } from 'fastify-token-auth'

// Your users, wherever they live; here one in memory, its password hashed with argon2id.
const users = new Map<string, UserRecord>([
  ['alice', { username: 'alice', passwordHash: await hashPassword('alice-password'), scopes: ['profile'] }]
])

const app = Fastify({
  // A credential a client put in a query string is masked in the log (docs/security-model.md),
  // and a client that never finishes its request is cut off after 10 s.
  logger: { serializers: { req: requestLogSerializer } },
  requestTimeout: 10_000
})
// A 404 whose message (and log line) would carry the raw URL: `/token/?password=…`, say.
app.setNotFoundHandler(notFoundHandler)

// In production, set JWT_SECRET (make one with `npx fastify-token-auth generate-secret`).
// Without it this demo signs with a random secret, and its tokens end with the process.
let secret = process.env.JWT_SECRET
if (secret === undefined || secret === '') {
  secret = randomBytes(32).toString('base64url')
  app.log.warn('JWT_SECRET is not set: using a random secret for this run')
}

await app.register(tokenAuth, {
  secret,
  findUser: async (username) => users.get(username) ?? null
})

app.get('/me', { preHandler: app.authenticate }, async (request) => {
  return { user: request.user.sub, scope: request.user.scope }
})

await app.listen({ port: Number(process.env.PORT ?? 3000) })
