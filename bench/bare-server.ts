/*
 * The bare app: Fastify alone, with the example server's logging settings, request timeout and
 * /public route (the same schema and handler), and nothing else: no plugin, no Swagger. It is the
 * floor that GET /protected on the example server is held to.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { requestLogSerializer } from 'fastify-token-auth'
import { requestTimeouts } from '../examples/timeouts.js'

type Env = Record<string, string | undefined>

export async function buildBare (env: Env): Promise<FastifyInstance> {
  // As in examples/server.ts: the same level, redaction and request serializer.
  const app = Fastify({
    logger: {
      level: env.LOG_LEVEL ?? 'info',
      redact: ['req.headers.authorization', 'req.headers.cookie'],
      serializers: { req: requestLogSerializer }
    },
    // And the same limit on how long a request may take to arrive.
    ...requestTimeouts(undefined)
  })
  app.get('/public', { schema: { summary: 'Anyone may call this' } }, async () => ({ message: 'Hello, world!' }))
  return app
}
