/*
 * The worker thread of bench/harness/paced.ts: sends its requests at evenly spaced times and
 * counts the answers by status. It runs in a thread of its own so that its client work does not
 * delay the probe in the bench's main thread.
 */
import { Agent, request as httpRequest } from 'node:http'
import { parentPort, workerData } from 'node:worker_threads'
import type { PacedOptions, PacedResult } from './paced.js'

const { url, method, headers, body, rate, seconds, connections } = workerData as PacedOptions
const agent = new Agent({ keepAlive: true, maxSockets: connections })
const statuses: Record<string, number> = {}
let errors = 0
const count = (key: string): void => { statuses[key] = (statuses[key] ?? 0) + 1 }

const interval = 1000 / rate
const total = Math.round(seconds * rate)
const start = performance.now()
const pending: Array<Promise<void>> = []
let sent = 0
while (sent < total) {
  // Every request that is due goes out now; a late wake-up catches up at once rather than
  // shifting the rest of the schedule.
  const now = performance.now()
  while (sent < total && start + sent * interval <= now) {
    pending.push(new Promise<void>((resolve) => {
      // Each request ends once: answered in full, or an error (a refused or cut connection, no
      // answer within 10 s, an answer cut short).
      let settled = false
      const settle = (status?: number): void => {
        if (settled) return
        settled = true
        if (status === undefined) errors++
        else count(String(status))
        resolve()
      }
      const req = httpRequest(url, { agent, method, headers, timeout: 10_000 }, (res) => {
        res.resume()
        res.on('end', () => { settle(res.statusCode) })
        res.on('close', () => { settle() })
      })
      req.on('timeout', () => { req.destroy() })
      req.on('error', () => { settle() })
      req.end(body)
    }))
    sent++
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + sent * interval - performance.now())))
}
await Promise.all(pending)
agent.destroy()
const result: PacedResult = { statuses, errors }
parentPort?.postMessage(result)
