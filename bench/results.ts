/*
 * Everything a run measured, as written to bench-results/*.json: the machine, the hashing pool
 * the server ran with, each scenario's figures (absent when BENCH_ONLY left it out), and the
 * targets read off them.
 */
import type { MemoryFigures } from './scenarios/memory.js'
import type { OpenFigures } from './scenarios/open.js'
import type { PostgresFigures } from './scenarios/postgres.js'
import type { RedisFigures } from './scenarios/redis.js'
import type { ThrottledFigures } from './scenarios/throttled.js'

export interface Target {
  ok: boolean
  line: string
}

export interface Results extends Partial<OpenFigures>, Partial<ThrottledFigures> {
  machine: Record<string, unknown>
  smoke: boolean
  hashing: { maxConcurrent: number, maxQueue: number, parameters: string }
  memory?: MemoryFigures
  redis?: RedisFigures
  postgres?: PostgresFigures
  targets: Target[]
}
