/*
 * `password.threadPoolPriority`: a lower scheduling priority for libuv's thread pool, where
 * argon2 hashes. On a core that both want, Linux gives the event loop's thread and a hashing
 * thread equal turns of a few ms each: every request that arrives while a hash holds the core
 * waits for its turn to end. With the pool's threads at nice 10 the event loop gets about nine
 * tenths of a core they share (sched(7): each step of nice is a weight about 1.25 times smaller),
 * and hashing still gets every moment the event loop is idle.
 *
 * Linux sets a nice value per thread (setpriority(2) with a thread id: "a nonstandard feature of
 * the Linux implementation", NOTES of sched(7)), and Node's `os.setPriority` passes the id
 * through. Node does not tell which threads are the pool's, so each is asked: a readlink of
 * /proc/thread-self runs on the pool thread that takes it and names that thread.
 */
import fs from 'node:fs/promises'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

/** libuv's pool size: UV_THREADPOOL_SIZE when set (libuv clamps it to 1–1024), else 4. */
export function threadPoolSize (env: NodeJS.ProcessEnv = process.env): number {
  const size = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10)
  if (!Number.isFinite(size)) return 4
  return Math.min(1024, Math.max(1, size))
}

/**
 * How long the search goes on finding no new pool thread before it stops. A thread busy with a
 * task (a hash the host started) or not scheduled (a loaded machine, and a thread already at a
 * lower priority) takes none of a round's readlinks; it answers once it is free or has run.
 */
const SEARCH_MS = 1000
/** The pause after a round that found no new thread, so that such a thread gets its turn. */
const PAUSE_MS = 5

/**
 * The thread ids of libuv's pool, found by rounds of readlinks of /proc/thread-self (several per
 * thread, at once, so that each idle thread takes some), until the pool's size is found or
 * SEARCH_MS passed with no new one. Rejects where there is no /proc (not Linux).
 */
export async function findPoolThreads (size = threadPoolSize()): Promise<number[]> {
  const found = new Set<number>()
  let since = performance.now()
  while (found.size < size && performance.now() - since < SEARCH_MS) {
    const before = found.size
    const links = await Promise.all(Array.from({ length: size * 8 }, async () => await fs.readlink('/proc/thread-self')))
    // Each reads "<pid>/task/<tid>".
    for (const link of links) found.add(Number(link.slice(link.lastIndexOf('/') + 1)))
    if (found.size > before) since = performance.now()
    else await sleep(PAUSE_MS)
  }
  return [...found]
}

/**
 * Lowers the pool threads' priority to `priority` (1–19 in `os.setPriority`'s terms, 19 the
 * lowest); a thread already lower is left as it is. Resolves how many threads were found;
 * rejects where the threads cannot be found or reniced.
 */
export async function lowerThreadPoolPriority (priority: number): Promise<number> {
  const threads = await findPoolThreads()
  for (const tid of threads) {
    if (os.getPriority(tid) < priority) os.setPriority(tid, priority)
  }
  return threads.length
}
