/*
 * What `authenticate` costs per request: GET /protected with a valid token on the example server
 * (revocable access tokens on, so a store read per request), next to GET /public on the same
 * server, the same with the token's Authorization header, and GET /public on a bare Fastify app
 * (no plugin, the same route and logging settings). Where taskset is available both servers run
 * on one core and the bench's client on another, as the issue measured it: the server is then
 * the bottleneck, and req/s measures it rather than the client.
 */
import { alternatePooled, expect, load, type LoadResult, type PooledResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { LOAD_CPU, pinningUnavailable, withBenchPinned } from '../harness/pinning.js'
import { login } from '../harness/requests.js'
import { withServers, type BenchServer, type ServerOptions } from '../harness/server-process.js'
import { CONNECTIONS, type Settings } from '../harness/settings.js'

export interface OverheadFigures {
  /** GET /public on the bare Fastify app. */
  bare: LoadResult
  public: LoadResult
  /** GET /public carrying the same Authorization header as /protected: what the token's bytes cost alone. */
  publicWithToken: LoadResult
  protected: LoadResult
  /** How many processes of each server the figures above are pooled over. */
  processes: number
  /** The bare app's GET /public and the example's GET /protected on each process alone. */
  bareEach: LoadResult[]
  protectedEach: LoadResult[]
  /** 'one core' when the servers ran pinned, else why they did not. */
  pinning: string
}

export async function runOverhead ({ time, rounds, processes }: Settings): Promise<OverheadFigures> {
  const unavailable = pinningUnavailable()
  const pinned = unavailable === undefined
  // Several processes of each server, side by side: two processes of the same code differ by more
  // than the plugin's cost per request, so one process of each would compare two draws.
  // RATE_LIMIT=off keeps the per-address limit's hooks out of the example, as the issue measured.
  const specs: Array<[string, Record<string, string>, ServerOptions]> = []
  for (let i = 1; i <= processes; i++) specs.push([`overhead-bare-${i}`, {}, { app: 'bare', pinned }], [`overhead-${i}`, { RATE_LIMIT: 'off' }, { pinned }])
  return await withServers(specs, async (servers) => {
    const pairs: Array<[bare: BenchServer, example: BenchServer]> = []
    for (let i = 0; i < servers.length; i += 2) pairs.push([servers[i] as BenchServer, servers[i + 1] as BenchServer])
    const bearers = await Promise.all(pairs.map(async ([, example]) => ({ authorization: `Bearer ${(await login(example.url)).access_token as string}` })))
    const measureAll = async (): Promise<PooledResult[]> => {
      log('warming up')
      for (const [i, [bare, example]] of pairs.entries()) {
        for (const url of [`${bare.url}/public`, `${example.url}/public`, `${example.url}/protected`]) {
          await load(undefined, { url, headers: bearers[i], connections: CONNECTIONS, duration: time.warm, latencies: false })
        }
      }
      log(`bare GET /public, GET /public, with the token, and GET /protected, in turns on ${processes} processes of each server${pinned ? ', servers on one core' : ''}`)
      // One group a row, one load a process: in a round, the bare app on each process, then
      // /public on each, and so on (forwards, then backwards).
      const groups = [
        pairs.map(([bare]) => ({ url: `${bare.url}/public`, connections: CONNECTIONS, server: bare })),
        pairs.map(([, example]) => ({ url: `${example.url}/public`, connections: CONNECTIONS, server: example })),
        pairs.map(([, example], i) => ({ url: `${example.url}/public`, headers: bearers[i], connections: CONNECTIONS, server: example })),
        pairs.map(([, example], i) => ({ url: `${example.url}/protected`, headers: bearers[i], connections: CONNECTIONS, server: example }))
      ]
      // Each process gets half a single server's time: the pooled figure has more, the run a little.
      return await alternatePooled(pairs[0]?.[1] as BenchServer, groups, time.run / 2, rounds)
    }
    const [bare, publicResult, publicWithToken, protectedResult] = (pinned ? await withBenchPinned(LOAD_CPU, measureAll) : await measureAll()) as [PooledResult, PooledResult, PooledResult, PooledResult]
    expect('bare GET /public', bare.pooled, '200')
    expect('GET /public', publicResult.pooled, '200')
    expect('GET /protected', protectedResult.pooled, '200')
    return {
      bare: bare.pooled,
      public: publicResult.pooled,
      publicWithToken: publicWithToken.pooled,
      protected: protectedResult.pooled,
      processes,
      bareEach: bare.each,
      protectedEach: protectedResult.each,
      pinning: pinned ? 'one core' : unavailable
    }
  })
}
