/* The machine a run measured, recorded with its figures: they mean nothing without it. */
import { readFileSync } from 'node:fs'
import os from 'node:os'

export function machine (): Record<string, unknown> {
  let cpu = os.cpus()[0]?.model ?? 'unknown'
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu
  } catch {}
  return {
    cpus: os.availableParallelism(),
    cpu,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    date: new Date().toISOString()
  }
}
