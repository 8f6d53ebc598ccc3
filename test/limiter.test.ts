import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { createLimiter, LimiterFullError } from '../lib/password/limiter.js'

/*
 * The hashing limiter's bounded wait: a task waits for a slot at most `maxWait` ms, then is
 * refused without having run; the queue stays first in, first out, and its bound holds.
 */

/** A task that holds its slot until `release()` is called. */
function held () {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  return { task: async () => { await gate }, release }
}

t.test('a task that waited maxWait is refused and never runs', async (t) => {
  const limiter = createLimiter(1, 10, 30)
  const first = held()
  const running = limiter.run(first.task)
  let ran = false
  const started = performance.now()
  await t.rejects(limiter.run(async () => { ran = true }), LimiterFullError)
  t.ok(performance.now() - started >= 25, 'it waited about maxWait first')
  t.notOk(ran, 'the refused task did not run')
  t.equal(limiter.full, false, 'its queue place is free again')
  first.release()
  await running
  t.equal(await limiter.run(async () => 'ok'), 'ok', 'the slot is free again')
})

t.test('waiters are refused in turn, each after its own wait, and a freed slot goes to the oldest', async (t) => {
  const limiter = createLimiter(1, 10, 60)
  const first = held()
  const running = limiter.run(first.task)
  const order: string[] = []
  const early = limiter.run(async () => { order.push('early') }).catch((error: unknown) => { order.push(`early refused: ${(error as Error).name}`) })
  await sleep(40)
  const late = limiter.run(async () => { order.push('late') }).catch((error: unknown) => { order.push(`late refused: ${(error as Error).name}`) })
  await early
  t.same(order, ['early refused: LimiterFullError'], 'the older waiter ran out first, the younger still waits')
  first.release()
  await running
  await late
  t.same(order, ['early refused: LimiterFullError', 'late'], 'the younger one got the freed slot within its wait')
})

t.test('a slot freed before the wait ran out serves the waiter, and the timer does not outlive the queue', async (t) => {
  const limiter = createLimiter(1, 2, 10_000)
  const first = held()
  const running = limiter.run(first.task)
  const second = limiter.run(async () => 2)
  first.release()
  await running
  t.equal(await second, 2)
  // Nothing waits now, and the limiter holds no timer that would keep the process up for maxWait.
})

t.test('maxQueue still bounds the waiters, however long they may wait', async (t) => {
  const limiter = createLimiter(1, 2, 10_000)
  const first = held()
  const running = limiter.run(first.task)
  const waiters = [limiter.run(async () => 1), limiter.run(async () => 2)]
  t.equal(limiter.full, true)
  await t.rejects(limiter.run(async () => 3), LimiterFullError, 'refused at once, past the queue')
  first.release()
  await running
  t.same(await Promise.all(waiters), [1, 2])
})

t.test('a long queue drains first in, first out', async (t) => {
  // More waiters than the queue's compaction step, so that its storage is compacted on the way.
  const count = 3000
  const limiter = createLimiter(1, count, 60_000)
  const first = held()
  const running = limiter.run(first.task)
  const order: number[] = []
  const waiters = Array.from({ length: count }, (_, i) => limiter.run(async () => { order.push(i) }))
  first.release()
  await running
  await Promise.all(waiters)
  t.equal(order.length, count)
  t.ok(order.every((n, i) => n === i), 'in the order they came')
})
