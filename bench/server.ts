/*
 * The server under benchmark, in a process of its own, on 127.0.0.1 and a free port: by default
 * the example server (examples/server.ts, built by the same `buildServer(env)`); with
 * BENCH_APP=bare the bare Fastify app (bench/bare-server.ts), with BENCH_APP=peer the
 * hand-written peer (bench/peer-server.ts).
 *
 * The bench talks to it over the IPC channel of `child_process.fork`, not over HTTP, so that
 * reading its figures adds no route and no request to what is measured:
 *   { cmd: 'stats', id }     -> memory, CPU time and the event-loop delay since the last reset
 *   { cmd: 'reset-eld', id } -> starts a new event-loop delay window
 *   { cmd: 'gc', id }        -> a full garbage collection (with --expose-gc), before a memory reading
 * Each is answered with { type: 'answer', id }.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import formbody from '@fastify/formbody'
import { buildServer } from '../examples/server.js'
import { buildBare } from './bare-server.js'
import { buildPeer } from './peer-server.js'

/** How often the event-loop delay is sampled, in ms; Node records the whole interval, this included. */
export const ELD_RESOLUTION_MS = 10

export interface ServerStats {
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  /** CPU time of the whole process (event loop and thread pool), in microseconds. */
  cpuUser: number
  cpuSystem: number
  /** Event-loop delay in ms over the window since the last reset, the sampling interval taken out. */
  eld: { p50: number, p99: number, max: number, samples: number }
}

/** What the server sends: `ready` once, then one answer per command, carrying the command's id. */
export type ServerMessage =
  | { type: 'ready', port: number }
  | { type: 'answer', id: number, stats?: ServerStats }

const send = (message: ServerMessage): void => { process.send?.(message) }

const builders = { bare: buildBare, peer: buildPeer, example: buildServer }
const app = await builders[(process.env.BENCH_APP ?? 'example') as keyof typeof builders](process.env)
if (process.env.BENCH_FLOOR === '1') {
  // The floor for any answer that needs the body: a form POST that a bare handler answers with
  // the same 429 as the token endpoint, without the plugin, the limiter or an error handler.
  await app.register(async function floor (scope) {
    await scope.register(formbody)
    scope.post('/bench-floor', async (_request, reply) => {
      reply.code(429).headers({ 'retry-after': '1', 'cache-control': 'no-store', pragma: 'no-cache' })
      return { error: 'too_many_requests', error_description: 'Too many failed logins; retry later' }
    })
  })
}
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS })
eld.enable()

const ms = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS)

process.on('message', ({ cmd, id }: { cmd: string, id: number }) => {
  switch (cmd) {
    case 'stats': {
      const memory = process.memoryUsage()
      const cpu = process.cpuUsage()
      send({
        type: 'answer',
        id,
        stats: {
          rss: memory.rss,
          heapUsed: memory.heapUsed,
          heapTotal: memory.heapTotal,
          external: memory.external,
          cpuUser: cpu.user,
          cpuSystem: cpu.system,
          eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), samples: eld.count }
        }
      })
      break
    }
    case 'reset-eld':
      eld.reset()
      send({ type: 'answer', id })
      break
    case 'gc':
      // Twice: the first pass may only queue finalizers that free more on the second.
      globalThis.gc?.()
      globalThis.gc?.()
      send({ type: 'answer', id })
      break
  }
})

// The bench ends this process; losing the channel means the bench itself is gone.
process.on('disconnect', () => { app.close().finally(() => process.exit(0)) })
send({ type: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0 })
