import t from 'tap'
import { getEventListeners } from 'node:events'
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

t.test('a waiter whose caller gives up is refused at once, gives its place back and never runs', async (t) => {
  const limiter = createLimiter(1, 2, 60_000)
  const first = held()
  const running = limiter.run(first.task)
  const ran: string[] = []
  const leaving = new AbortController()
  const left = limiter.run(async () => { ran.push('left') }, leaving.signal)
  const stays = new AbortController()
  const waiting = limiter.run(async () => { ran.push('stayed') }, stays.signal)
  t.equal(limiter.full, true, 'two waiting: the queue is full')
  leaving.abort()
  await t.rejects(left, LimiterFullError, 'refused as soon as its caller went')
  t.equal(limiter.full, false, 'its place in the queue is free again')
  const third = limiter.run(async () => { ran.push('third') })
  t.equal(limiter.full, true)
  t.equal(getEventListeners(leaving.signal, 'abort').length, 0, 'nothing still listens to the signal of the one that left')
  first.release()
  await running
  await waiting
  await third
  t.same(ran, ['stayed', 'third'], 'the one that left never ran; the others ran in order')
  t.equal(getEventListeners(stays.signal, 'abort').length, 0, 'a started task no longer listens to its signal')
})

t.test('a caller already gone is refused, slot or no slot; one that leaves after its start is not stopped', async (t) => {
  const limiter = createLimiter(1, 10, 60_000)
  let ran = false
  await t.rejects(limiter.run(async () => { ran = true }, AbortSignal.abort()), LimiterFullError, 'refused with the slot free')
  const first = held()
  const running = limiter.run(first.task)
  await t.rejects(limiter.run(async () => { ran = true }, AbortSignal.abort()), LimiterFullError, 'refused at once with the slot taken')
  t.notOk(ran)
  t.equal(limiter.full, false)
  first.release()
  await running
  const started = new AbortController()
  const second = held()
  const task = limiter.run(async () => { await second.task(); return 'ran' }, started.signal)
  started.abort()
  second.release()
  t.equal(await task, 'ran')
})

t.test('waiters that left are passed over when a slot frees and when the wait runs out', async (t) => {
  const limiter = createLimiter(1, 10, 50)
  const first = held()
  const running = limiter.run(first.task)
  const callers = Array.from({ length: 4 }, () => new AbortController())
  const results = callers.map((c, i) => limiter.run(async () => i, c.signal).catch((error: Error) => error.message))
  callers[0]?.abort()
  callers[2]?.abort()
  // The others wait out maxWait: the expiry passes over the ones that left.
  t.same(await Promise.all(results), ['its caller has gone', 'waited too long for a slot', 'its caller has gone', 'waited too long for a slot'])
  first.release()
  await running
  t.equal(limiter.full, false)
  const callers2 = Array.from({ length: 3 }, () => new AbortController())
  const holder = held()
  const running2 = limiter.run(holder.task)
  const results2 = callers2.map((c, i) => limiter.run(async () => i, c.signal).catch((error: Error) => error.message))
  callers2[0]?.abort()
  callers2[1]?.abort()
  holder.release()
  await running2
  t.same(await Promise.all(results2), ['its caller has gone', 'its caller has gone', 2], 'the freed slot went to the one still waiting')
})

t.test('a refusal captures no stack trace, and leaves the global stack limit as it was', async (t) => {
  const limiter = createLimiter(1, 0, 10)
  const first = held()
  const running = limiter.run(first.task)
  const before = Error.stackTraceLimit
  const error = await limiter.run(async () => {}).catch((e: unknown) => e) as Error
  t.type(error, LimiterFullError)
  t.equal(error.stack, 'LimiterFullError: too many tasks waiting', 'its name and message, no frames')
  t.equal(Error.stackTraceLimit, before)
  t.match(new Error('other').stack, /\n\s+at /, 'other errors keep their frames')
  first.release()
  await running
})
