import { StacklessError } from '../util/stackless-error.js'

/**
 * Thrown by a limiter whose running slots and queue are all taken, whose wait ran out, or whose
 * caller gave up (its `signal` aborted) while it waited: under a login flood, most logins.
 */
export class LimiterFullError extends StacklessError {
  override name = 'LimiterFullError'
}

/**
 * Runs at most `maxConcurrent` tasks at once, with at most `maxQueue` waiting, each for at most
 * `maxWait` ms: a task still waiting then is refused without having run.
 */
export interface Limiter {
  /**
   * A task whose `signal` has aborted (its client has gone, say) is refused without running; one
   * whose signal aborts while it waits is refused then, and gives its place in the queue back: no
   * slot goes to work that no one waits for any more. A task that has started is not stopped.
   */
  run: <T>(task: () => Promise<T>, signal?: AbortSignal) => Promise<T>
  /** True when neither a slot nor a queue place is free. */
  readonly full: boolean
}

interface Waiter {
  /** `performance.now()` past which the task is refused rather than started. */
  deadline: number
  start: () => void
  refuse: (error: LimiterFullError) => void
  /** Its caller gave up: it was refused then, and is dropped when it reaches the head. */
  gone: boolean
}

/**
 * Compacting the queue's array once its consumed head is this long (and at least half of it)
 * keeps every operation O(1) amortised without `shift`, which copies the whole array.
 */
const COMPACT_AFTER = 1024

export function createLimiter (maxConcurrent: number, maxQueue: number, maxWait: number): Limiter {
  let running = 0
  // A FIFO: queue[head] is the oldest waiter. Every waiter waits the same `maxWait`, so the
  // deadlines are in queue order, and one timer, set for the oldest, serves the whole queue.
  let queue: Waiter[] = []
  let head = 0
  // How many waiters in the queue are gone: they hold no place in it.
  let gone = 0
  let timer: NodeJS.Timeout | undefined

  const waiting = (): number => queue.length - head - gone

  function take (): Waiter | undefined {
    const waiter = queue[head]
    if (waiter === undefined) return undefined
    queue[head++] = undefined as unknown as Waiter
    if (head === queue.length) {
      queue = []
      head = 0
    } else if (head >= COMPACT_AFTER && head * 2 >= queue.length) {
      queue = queue.slice(head)
      head = 0
    }
    return waiter
  }

  /** Refuses every waiter whose time ran out, then sets the timer for the oldest one left. */
  function expire (): void {
    timer = undefined
    const now = performance.now()
    while (head < queue.length && (queue[head] as Waiter).deadline <= now) {
      const waiter = take() as Waiter
      if (waiter.gone) gone -= 1
      else waiter.refuse(new LimiterFullError('waited too long for a slot'))
    }
    arm()
  }

  function arm (): void {
    const oldest = queue[head]
    if (timer !== undefined || oldest === undefined) return
    // Not unref'd: a waiting login is owed an answer, and the wait is bounded.
    timer = setTimeout(expire, Math.max(0, oldest.deadline - performance.now()))
  }

  function next (): void {
    running -= 1
    let waiter = take()
    while (waiter?.gone === true) {
      gone -= 1
      waiter = take()
    }
    if (waiter === undefined) {
      if (timer !== undefined) {
        clearTimeout(timer)
        timer = undefined
      }
      return
    }
    running += 1
    waiter.start()
  }

  /** Waits for a slot: `start` gives it, `refuse` or the signal takes the waiter out. */
  async function wait (signal: AbortSignal | undefined): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { deadline: performance.now() + maxWait, start: resolve, refuse: reject, gone: false }
      if (signal !== undefined) {
        const leave = (): void => {
          waiter.gone = true
          gone += 1
          reject(new LimiterFullError('its caller has gone'))
        }
        signal.addEventListener('abort', leave, { once: true })
        // The listener must not outlive the wait: a keep-alive connection serves many requests.
        waiter.start = () => { signal.removeEventListener('abort', leave); resolve() }
        waiter.refuse = (error) => { signal.removeEventListener('abort', leave); reject(error) }
      }
      queue.push(waiter)
      arm()
    })
  }

  return {
    get full () {
      return running >= maxConcurrent && waiting() >= maxQueue
    },
    async run (task, signal) {
      if (signal?.aborted === true) throw new LimiterFullError('its caller has gone')
      if (running >= maxConcurrent) {
        if (waiting() >= maxQueue) throw new LimiterFullError('too many tasks waiting')
        await wait(signal)
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
