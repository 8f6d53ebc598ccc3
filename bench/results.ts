/*
 * Everything a run measured, as written to bench-results/*.json: the machine, the hashing pool
 * the server ran with, each scenario's figures (absent when BENCH_ONLY left it out), and the
 * targets read off them.
 */
import type { FloodFigures } from './scenarios/flood.js'
import type { MemoryFigures } from './scenarios/memory.js'
import type { OpenFigures } from './scenarios/open.js'
import type { PostgresFigures } from './scenarios/postgres.js'
import type { OverheadFigures } from './scenarios/overhead.js'
import type { RedisFigures } from './scenarios/redis.js'
import type { ThrottledFigures } from './scenarios/throttled.js'

export interface Target {
  ok: boolean
  line: string
  /** For the chart: a short name, the figure, its bound, and which side of the bound passes. */
  name: string
  value: number
  limit: number
  op: '>=' | '<=' | '<'
}

export interface Results extends Partial<OpenFigures>, Partial<ThrottledFigures> {
  machine: Record<string, unknown>
  smoke: boolean
  hashing: { maxConcurrent: number, maxQueue: number, maxWait: number, parameters: string }
  overhead?: OverheadFigures
  /** The 50-connection login flood, with the servers unpinned and on one core each. */
  flood50?: FloodFigures | { skipped: string }
  flood50Pinned?: FloodFigures | { skipped: string }
  memory?: MemoryFigures
  redis?: RedisFigures
  postgres?: PostgresFigures
  targets: Target[]
}
