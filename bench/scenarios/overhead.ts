/*
 * What `authenticate` costs per request: GET /protected with a valid token on the example server
 * (revocable access tokens on, so a store read per request), next to GET /public on the same
 * server, the same with the token's Authorization header, and GET /public on a bare Fastify app
 * (no plugin, the same route and logging settings). Where taskset is available both servers run
 * on one core and the bench's client on another, as the issue measured it: the server is then
 * the bottleneck, and req/s measures it rather than the client.
 */
import { alternate, expect, load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { LOAD_CPU, pinningUnavailable, withBenchPinned } from '../harness/pinning.js'
import { login } from '../harness/requests.js'
import { withServers } from '../harness/server-process.js'
import { CONNECTIONS, type Settings } from '../harness/settings.js'

export interface OverheadFigures {
  /** GET /public on the bare Fastify app. */
  bare: LoadResult
  public: LoadResult
  /** GET /public carrying the same Authorization header as /protected: what the token's bytes cost alone. */
  publicWithToken: LoadResult
  protected: LoadResult
  /** 'one core' when the servers ran pinned, else why they did not. */
  pinning: string
}

export async function runOverhead ({ time, rounds }: Settings): Promise<OverheadFigures> {
  const unavailable = pinningUnavailable()
  const pinned = unavailable === undefined
  // RATE_LIMIT=off keeps the per-address limit's hooks out of the example, as the issue measured.
  return await withServers([
    ['overhead-bare', {}, { app: 'bare', pinned }],
    ['overhead', { RATE_LIMIT: 'off' }, { pinned }]
  ], async ([bare, server]) => {
    if (bare === undefined || server === undefined) throw new Error('overhead: a server did not start')
    const token = (await login(server.url)).access_token as string
    const bearer = { authorization: `Bearer ${token}` }
    const measureAll = async (): Promise<LoadResult[]> => {
      log('warming up')
      for (const url of [`${bare.url}/public`, `${server.url}/public`, `${server.url}/protected`]) {
        await load(undefined, { url, headers: bearer, connections: CONNECTIONS, duration: time.warm, latencies: false })
      }
      log(`bare GET /public, GET /public, with the token, and GET /protected, in turns${pinned ? ', servers on one core' : ''}`)
      return await alternate(server, [
        { url: `${bare.url}/public`, connections: CONNECTIONS, server: bare },
        { url: `${server.url}/public`, connections: CONNECTIONS },
        { url: `${server.url}/public`, headers: bearer, connections: CONNECTIONS },
        { url: `${server.url}/protected`, headers: bearer, connections: CONNECTIONS }
      ], time.run, rounds)
    }
    const [bareResult, publicResult, publicWithToken, protectedResult] = (pinned ? await withBenchPinned(LOAD_CPU, measureAll) : await measureAll()) as [LoadResult, LoadResult, LoadResult, LoadResult]
    expect('bare GET /public', bareResult, '200')
    expect('GET /public', publicResult, '200')
    expect('GET /protected', protectedResult, '200')
    return { bare: bareResult, public: publicResult, publicWithToken, protected: protectedResult, pinning: pinned ? 'one core' : unavailable }
  })
}
