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
