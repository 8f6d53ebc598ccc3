/*
 * Memory over many distinct keys: each request comes from a new address (X-Forwarded-For) for a
 * new username, so each adds a key to @fastify/rate-limit's per-address LRU and two login
 * counters (per username, per username and address) to the memory store.
 *
 * Which body: a password login for an unknown user, sent by more connections than the hashing
 * pool has slots and queue places. The pool and its queue stay full, so nearly every request
 * passes the per-address limit and reserves its login counters, then finds no place and gets 503
 * at once, without hashing; the few that find a slot verify the dummy hash and get 400, and those
 * that find a queue place wait for one or get 503 when their wait runs out. Every path goes
 * through every per-key structure, which a body refused earlier (bad form, missing field) would
 * not. A warm-up of the same traffic comes first, so that the memory of a full pool and the JIT
 * are in the "before" figure, not counted as growth.
 */
import type autocannon from 'autocannon'
import type { ServerStats } from '../server.js'
import { load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { FORM, nextAddress } from '../harness/requests.js'
import { withServer } from '../harness/server-process.js'
import type { HashingBounds, Settings } from '../harness/settings.js'

/** Connections beyond those the pool and its queue hold: these get their 503 at once. */
const MEMORY_CONNECTIONS = 100

export interface MemoryFigures {
  requested: number
  requests: number
  statuses: Record<string, number>
  seconds: number
  before: ServerStats
  /** After the first half of the requests. */
  half: ServerStats
  after: ServerStats
  peakRss: number
}

export async function runMemory ({ time }: Settings, { maxConcurrent, maxQueue }: HashingBounds): Promise<MemoryFigures> {
  // The queue full all along, and its memory (requests held while they wait) in every reading.
  const connections = maxConcurrent + maxQueue + MEMORY_CONNECTIONS
  // MALLOC_MMAP_THRESHOLD_ (glibc; ignored elsewhere): each hash's 19 MiB is given back to the
  // system when the hash ends. Without it glibc keeps the last one in every thread-pool thread
  // that hashed (and, fragmented, sometimes more), so RSS grows by up to 19 MiB a thread at
  // whatever moment a thread first hashes: the allocator's, not the per-key structures' growth.
  return await withServer('memory', { TRUST_PROXY: '1', MALLOC_MMAP_THRESHOLD_: String(128 * 1024) }, async (server) => {
    const { url } = server
    let user = 0
    const distinct = (prefix: string): autocannon.Request[] => [{
      method: 'POST',
      setupRequest: (request) => ({
        ...request,
        headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() },
        body: `grant_type=password&username=${prefix}${++user}&password=not-the-password`
      })
    }]
    log(`memory: warm-up, ${time.memoryWarm} requests`)
    await load(undefined, { url: `${url}/token`, connections, duration: time.deadline, responses: time.memoryWarm, requests: distinct('warm'), latencies: false })
    await server.command('gc')
    const before = await server.stats()
    log(`memory: ${time.memoryRequests} requests from distinct addresses for distinct usernames`)
    let peakRss = before.rss
    const sampler = setInterval(() => { server.stats().then((s) => { peakRss = Math.max(peakRss, s.rss) }, () => {}) }, 500)
    // In two halves, with a reading between: bounded structures stop growing once full, so the
    // second half should add (next to) nothing.
    const halves: LoadResult[] = []
    let half: ServerStats
    try {
      for (const share of [0.5, 0.5]) {
        const responses = Math.round(share * time.memoryRequests)
        halves.push(await load(undefined, { url: `${url}/token`, connections, duration: time.deadline, responses, requests: distinct('user'), latencies: false }))
        if (halves.length === 1) {
          await server.command('gc')
          half = await server.stats()
        }
      }
    } finally {
      clearInterval(sampler)
    }
    const statuses: Record<string, number> = {}
    for (const run of halves) for (const [code, n] of Object.entries(run.statuses)) statuses[code] = (statuses[code] ?? 0) + n
    if ((statuses['503'] ?? 0) === 0) throw new Error(`the memory run: no 503 answer (got ${JSON.stringify(statuses)})`)
    await server.command('gc')
    const after = await server.stats()
    return {
      requested: time.memoryRequests,
      requests: Object.values(statuses).reduce((sum, n) => sum + n, 0),
      statuses,
      seconds: halves.reduce((sum, run) => sum + run.seconds, 0),
      before,
      half: half!,
      after,
      peakRss: Math.max(peakRss, after.rss)
    }
  })
}
