/*
 * The server with the default limits, under brute force on one username: how fast the plugin
 * says 429, from one address and from a new address each time, next to GET /public and to a
 * bare Fastify route answering the same form POST with the same 429.
 */
import { alternate, expect, type LoadOptions, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { FORM, nextAddress, WRONG } from '../harness/requests.js'
import { withServer } from '../harness/server-process.js'
import { CONNECTIONS, type Settings } from '../harness/settings.js'

export interface ThrottledFigures {
  /** GET /public on the throttled server, measured in turns with the brute force. */
  publicThrottled: LoadResult
  bruteForceOneIp: LoadResult
  bruteForceManyIps: LoadResult
  /** A bare Fastify form POST answered 429, from a new address each time: the floor for the row above. */
  formFloor: LoadResult
}

/** 429s per second during brute force against one username, from one address and from many. */
export async function runThrottled ({ time, rounds }: Settings): Promise<ThrottledFigures> {
  return await withServer('throttled', { TRUST_PROXY: '1', BENCH_FLOOR: '1' }, async (server) => {
    const { url } = server
    log('brute force on one username from one address, from a new address each time, a bare form POST, and GET /public, in turns')
    const fromNewAddresses = (path: string): LoadOptions => ({
      url: `${url}${path}`,
      connections: CONNECTIONS,
      requests: [{
        method: 'POST',
        body: WRONG.replace('user1', 'victim'),
        setupRequest: (request) => ({ ...request, headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() } })
      }]
    })
    const [publicThrottled, bruteForceOneIp, bruteForceManyIps, formFloor] = await alternate(server, [
      { url: `${url}/public`, connections: CONNECTIONS },
      { url: `${url}/token`, method: 'POST', headers: FORM, body: WRONG, connections: CONNECTIONS },
      fromNewAddresses('/token'),
      fromNewAddresses('/bench-floor')
    ], time.run, rounds) as [LoadResult, LoadResult, LoadResult, LoadResult]
    expect('GET /public', publicThrottled, '200')
    expect('brute force from one address', bruteForceOneIp, '429')
    expect('brute force from many addresses', bruteForceManyIps, '429')
    expect('a bare form POST', formFloor, '429')
    return { publicThrottled, bruteForceOneIp, bruteForceManyIps, formFloor }
  })
}
