/*
 * Pinning to CPUs with `taskset`: the server under test on one core, the bench's own load on
 * another, so that a figure measures the server and not the two fighting over a core. Where
 * `taskset` is missing, or the machine has a single CPU, the pinned runs are skipped with a note.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import os from 'node:os'

/** The core a pinned server runs on, and the one the bench's load then runs on. */
export const SERVER_CPU = 0
export const LOAD_CPU = 1

/** Why the pinned runs cannot happen here, or `undefined` when they can. */
export function pinningUnavailable (): string | undefined {
  if (process.platform !== 'linux') return `pinning needs Linux's taskset (this is ${process.platform})`
  if (spawnSync('taskset', ['-V']).error !== undefined) return 'taskset is not installed (util-linux)'
  if (os.availableParallelism() < 2) return 'one CPU only: the server and the load cannot have a core each'
  return undefined
}

/** The CPUs this process may run on, as taskset lists them ("0-1", "0,2"). */
function currentCpus (): string {
  return execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' }).split(':').at(-1)?.trim() ?? ''
}

/**
 * Runs `fn` with every thread of this process (the load's client, its worker threads, argon2's
 * thread pool) on `cpu`, and puts the process back on the CPUs it had, whatever happens.
 */
export async function withBenchPinned<T> (cpu: number, fn: () => Promise<T>): Promise<T> {
  const before = currentCpus()
  execFileSync('taskset', ['-a', '-c', '-p', String(cpu), String(process.pid)], { stdio: 'ignore' })
  try {
    return await fn()
  } finally {
    execFileSync('taskset', ['-a', '-c', '-p', before, String(process.pid)], { stdio: 'ignore' })
  }
}
