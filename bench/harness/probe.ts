/*
 * The latency probe, and the server's event-loop delay over the same seconds: what a protected
 * call waits for while the server is idle or under a login flood.
 */
import { Agent, request as httpRequest } from 'node:http'
import type { ServerStats } from '../server.js'
import { percentile } from './load.js'
import type { BenchServer } from './server-process.js'
import { PROBE_INTERVAL_MS } from './settings.js'

export interface ProbeResult {
  requests: number
  p50: number
  p99: number
  max: number
  statuses: Record<string, number>
}

/** The probe's latency, and the server's event-loop delay over the same window. */
export interface LatencyWindow {
  probe: ProbeResult
  eld: ServerStats['eld']
}

/**
 * GET /protected every PROBE_INTERVAL_MS for `seconds`, on its own keep-alive connections.
 * Latency is counted from when each request was due, not when it went out, so a stall of the
 * server shows in full (no coordinated omission). autocannon's rate limiting sends in bursts at
 * the top of each second, which would sample only part of it. A timer can wake up to a
 * millisecond early (it runs on the event loop's whole-millisecond clock): a request that went
 * out before it was due is counted from when it went out, else an idle server's answers, faster
 * than that millisecond, would come out at less than nothing.
 */
export async function probe (url: string, token: string, seconds: number): Promise<ProbeResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  const latencies: number[] = []
  const statuses: Record<string, number> = {}
  const start = performance.now()
  const total = Math.round((seconds * 1000) / PROBE_INTERVAL_MS)
  const pending: Array<Promise<void>> = []
  for (let i = 0; i < total; i++) {
    const due = start + i * PROBE_INTERVAL_MS
    const wait = due - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    const from = Math.min(due, performance.now())
    pending.push(new Promise<void>((resolve) => {
      const req = httpRequest(`${url}/protected`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume()
        res.on('end', () => {
          latencies.push(performance.now() - from)
          statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1
          resolve()
        })
      })
      req.on('error', () => { statuses.error = (statuses.error ?? 0) + 1; resolve() })
      req.end()
    }))
  }
  await Promise.all(pending)
  agent.destroy()
  // A probe that got anything but 200 measured something else than a protected call.
  if ((statuses['200'] ?? 0) !== total) throw new Error(`the GET /protected probe got ${JSON.stringify(statuses)}`)
  const sorted = Float64Array.from(latencies).sort()
  return { requests: total, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN, statuses }
}

/**
 * Starts a new event-loop delay window in the server, probes for `seconds`, and reads the
 * window: the delay is measured in the server (bench/server.ts), over the probe's seconds only.
 */
export async function probeWithEventLoopDelay (server: BenchServer, token: string, seconds: number): Promise<LatencyWindow> {
  await server.command('reset-eld')
  const result = await probe(server.url, token, seconds)
  return { probe: result, eld: (await server.stats()).eld }
}
