import os from 'node:os'

/** Thrown by a limiter whose running slots and queue are all taken. */
export class LimiterFullError extends Error {
  override name = 'LimiterFullError'
}

/** Runs at most `maxConcurrent` tasks at once, with at most `maxQueue` waiting. */
export interface Limiter {
  run: <T>(task: () => Promise<T>) => Promise<T>
  /** True when neither a slot nor a queue place is free. */
  readonly full: boolean
}

export function createLimiter (maxConcurrent: number, maxQueue: number): Limiter {
  let running = 0
  const waiting: Array<() => void> = []

  function next (): void {
    running -= 1
    const start = waiting.shift()
    if (start !== undefined) {
      running += 1
      start()
    }
  }

  return {
    get full () {
      return running >= maxConcurrent && waiting.length >= maxQueue
    },
    async run (task) {
      if (running >= maxConcurrent) {
        if (waiting.length >= maxQueue) throw new LimiterFullError('too many tasks waiting')
        await new Promise<void>((resolve) => waiting.push(resolve))
      } else {
        running += 1
      }
      try {
        return await task()
      } finally {
        next()
      }
    }
  }
}

/**
 * The default number of password hashes that run at once: the size of libuv's thread pool
 * (`UV_THREADPOOL_SIZE`, 4 unless set), where argon2 runs, but at most one less than the CPUs
 * the process may use, and at least one. argon2 keeps a CPU busy for the whole hash: with a hash
 * running on every CPU, the event loop has to win CPU time from them, and every request the app
 * serves waits while a login flood is hashed (measured by `npm run bench`: on two CPUs, two
 * hashes at once let the event loop stall for 30 to 50 ms under a flood; one keeps it under 20,
 * for somewhat fewer logins a second). More hashes than CPUs add no throughput at all, only
 * memory (the memory cost of each one) and a longer wait for every login.
 */
export function defaultHashingConcurrency (): number {
  // libuv reads the variable as a whole number, as atoi does.
  const poolSize = Math.floor(Number(process.env.UV_THREADPOOL_SIZE))
  return Math.max(1, Math.min(poolSize > 0 ? poolSize : 4, os.availableParallelism() - 1))
}
