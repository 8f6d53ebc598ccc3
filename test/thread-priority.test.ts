import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import fsPromises from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { buildApp, captureLogs, login, tokenRequest } from './helper.js'

/*
 * password.threadPoolPriority: the threads that hash (libuv's pool) run at a lower priority than
 * the event loop, so that requests other than logins go first on a core both want. Linux sets a
 * priority per thread; these tests read every thread of this process (/proc/self/task) and the
 * CPU time each spent, so they find the threads that hashed without asking the plugin.
 *
 * Each test file runs in a process of its own; within this one, a thread's priority can only be
 * lowered (raising it back needs privileges), so the tests go from no change to lower ones.
 */

// The tests read priorities as set from 0: under `nice` every thread starts lower already.
const LINUX = process.platform !== 'linux'
  ? 'per-thread priorities are a Linux feature: skipped on this platform'
  : os.getPriority() !== 0 ? `this process runs at priority ${os.getPriority()}, not 0 (under nice): skipped` : false

/** Every thread of this process: its priority and the CPU time it has run, in clock ticks. */
function threads (): Map<number, { priority: number, cpu: number }> {
  const result = new Map<number, { priority: number, cpu: number }>()
  for (const entry of readdirSync('/proc/self/task')) {
    const tid = Number(entry)
    let stat: string
    try {
      stat = readFileSync(`/proc/self/task/${entry}/stat`, 'utf8')
    } catch {
      continue // a thread that ended meanwhile
    }
    // proc(5): after "(comm)", the fields from the third on; utime and stime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    result.set(tid, { priority: os.getPriority(tid), cpu: Number(fields[11]) + Number(fields[12]) })
  }
  return result
}

/** The CPU time (clock ticks) the threads other than the main one ran while `work` ran, by their priority. */
async function cpuByPriority (work: () => Promise<unknown>): Promise<Map<number, number>> {
  const before = threads()
  await work()
  const ran = new Map<number, number>()
  for (const [tid, { priority, cpu }] of threads()) {
    if (tid === process.pid) continue
    ran.set(priority, (ran.get(priority) ?? 0) + cpu - (before.get(tid)?.cpu ?? 0))
  }
  return ran
}

/**
 * Logins of unknown users: each is checked against the plugin's dummy hash, made with the
 * configured (here OWASP's) parameters, some 20–40 ms of one thread's CPU.
 */
const heavyLogins = (app: Awaited<ReturnType<typeof buildApp>>) => async () => {
  for (let i = 0; i < 16; i++) {
    const response = await tokenRequest(app, { grant_type: 'password', username: `nobody-${i}`, password: 'password1' })
    if (response.statusCode !== 400) throw new Error(`unexpected ${response.statusCode}`)
  }
}

const DEFAULT_COST = { memoryCost: 19456, timeCost: 2, parallelism: 1 }

t.test('by default no thread\'s priority is changed', { skip: LINUX }, async (t) => {
  const app = await buildApp(t, { plugin: { password: DEFAULT_COST } })
  const ran = await cpuByPriority(heavyLogins(app))
  t.ok((ran.get(0) ?? 0) >= 10, 'the logins were hashed, at priority 0')
  for (const { priority } of threads().values()) t.equal(priority, 0)
})

t.test('threadPoolPriority 10: the threads that hash run at 10, the event loop stays at 0', { skip: LINUX }, async (t) => {
  const app = await buildApp(t, { plugin: { password: { ...DEFAULT_COST, threadPoolPriority: 10 } } })
  t.equal(os.getPriority(), 0, 'the main thread (the event loop) is left as it was')
  // 16 hashes of 20–40 ms each: most of that CPU time off the main thread is theirs (the rest is
  // V8's helper threads, left at 0).
  const ran = await cpuByPriority(heavyLogins(app))
  const lowered = ran.get(10) ?? 0
  t.ok(lowered >= 10, `the threads at 10 ran the hashes (${lowered} ticks)`)
  t.ok(lowered > (ran.get(0) ?? 0), `more than every other thread but the main one together (${ran.get(0) ?? 0} ticks)`)
  const pool = [...threads().values()].filter(({ priority }) => priority === 10)
  t.equal(pool.length, Number(process.env.UV_THREADPOOL_SIZE ?? 4), 'every pool thread, and only those')
})

t.test('a thread already at a lower priority is left there; a higher setting lowers the rest', { skip: LINUX }, async (t) => {
  // As libuv read it when this process's pool started (its default), now spelled out.
  const saved = process.env.UV_THREADPOOL_SIZE
  process.env.UV_THREADPOOL_SIZE = saved ?? '4'
  t.teardown(() => { if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE })
  const pool = [...threads()].filter(([, { priority }]) => priority === 10).map(([tid]) => tid)
  const [first] = pool as [number]
  os.setPriority(first, 19)
  await buildApp(t, { plugin: { password: { ...DEFAULT_COST, threadPoolPriority: 5 } } })
  t.equal(os.getPriority(first), 19, 'not raised back to 5')
  for (const tid of pool.slice(1)) t.equal(os.getPriority(tid), 10, 'not raised either')
  await buildApp(t, { plugin: { password: { ...DEFAULT_COST, threadPoolPriority: 15 } } })
  for (const tid of pool.slice(1)) t.equal(os.getPriority(tid), 15)
})

t.test('a UV_THREADPOOL_SIZE above the pool that started: the search ends, and lowers every thread it found', { skip: LINUX }, async (t) => {
  // libuv read the size when the pool started; a value set later names threads that do not exist.
  const pool = [...threads()].filter(([, { priority }]) => priority >= 10).map(([tid]) => tid)
  const saved = process.env.UV_THREADPOOL_SIZE
  process.env.UV_THREADPOOL_SIZE = String(pool.length + 1)
  t.teardown(() => { if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE; else process.env.UV_THREADPOOL_SIZE = saved })
  await buildApp(t, { plugin: { password: { ...DEFAULT_COST, threadPoolPriority: 17 } } })
  t.equal(pool.length, 4)
  for (const tid of pool) t.ok(os.getPriority(tid) >= 17, `thread ${tid} lowered`)
  t.equal(os.getPriority(), 0, 'the main thread is not among them')
})

t.test('where the threads cannot be found, a warning is logged and logins work', async (t) => {
  t.capture(fsPromises, 'readlink', async () => { throw Object.assign(new Error('ENOENT: no such file or directory, readlink \'/proc/thread-self\''), { code: 'ENOENT' }) })
  const logs = captureLogs()
  const app = await buildApp(t, { server: { logger: { level: 'warn', stream: logs.stream } }, plugin: { password: { threadPoolPriority: 10 } } })
  const warning = logs.entries().find((entry) => String(entry.msg).startsWith('password.threadPoolPriority'))
  t.match(warning, { level: 40, msg: /left as it was \(ENOENT/ })
  t.type(await login(app), 'string', 'the plugin started and serves logins')
})

t.test('where a thread cannot be reniced, a warning is logged and logins work', async (t) => {
  t.capture(os, 'setPriority', () => { throw Object.assign(new Error('A system error occurred: uv_os_setpriority returned EACCES (permission denied)'), { code: 'ERR_SYSTEM_ERROR' }) })
  t.capture(os, 'getPriority', () => 0)
  const logs = captureLogs()
  const app = await buildApp(t, { server: { logger: { level: 'warn', stream: logs.stream } }, plugin: { password: { threadPoolPriority: 19 } } })
  t.match(logs.entries(), [{ level: 40, msg: /^password\.threadPoolPriority: .*EACCES/ }])
  t.type(await login(app), 'string')
})

t.test('with UV_THREADPOOL_SIZE set, every one of that many pool threads is lowered', { skip: LINUX }, async (t) => {
  // In a process of its own: libuv reads the size once, when the pool starts. It runs the built
  // package (npm test builds it first), plain JavaScript: a child that compiled lib/ on the fly
  // would report its coverage against lines that are not the sources'.
  const script = `
    import Fastify from 'fastify'
    import { readdirSync } from 'node:fs'
    import os from 'node:os'
    import tokenAuth from 'fastify-token-auth'
    const app = Fastify()
    await app.register(tokenAuth, { secret: (await import('node:crypto')).randomBytes(32), findUser: () => null, password: { memoryCost: 256, threadPoolPriority: 7 } })
    await app.ready()
    console.log(readdirSync('/proc/self/task').filter((tid) => os.getPriority(Number(tid)) === 7).length)
    await app.close()
  `
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url), env: { PATH: process.env.PATH, UV_THREADPOOL_SIZE: '6' }, encoding: 'utf8'
  })
  t.equal(out.trim(), '6')
})

t.test('a pool thread busy with the host\'s work when the plugin starts is lowered once it is free', { skip: LINUX }, async (t) => {
  // In a process of its own, for a pool whose threads are all at 0. One thread is held in the
  // open(2) of a FIFO, which returns only once a writer opens it: 300 ms after the plugin starts
  // looking for the threads.
  const fifo = join(t.testdir(), 'fifo')
  execFileSync('mkfifo', [fifo])
  const script = `
    import Fastify from 'fastify'
    import { constants, openSync, closeSync } from 'node:fs'
    import { open } from 'node:fs/promises'
    import { readdirSync } from 'node:fs'
    import os from 'node:os'
    import tokenAuth from 'fastify-token-auth'
    const held = open(${JSON.stringify(fifo)}, 'r')
    setTimeout(() => closeSync(openSync(${JSON.stringify(fifo)}, constants.O_WRONLY | constants.O_NONBLOCK)), 300)
    const app = Fastify()
    await app.register(tokenAuth, { secret: (await import('node:crypto')).randomBytes(32), findUser: () => null, password: { memoryCost: 256, threadPoolPriority: 7 } })
    await app.ready()
    await (await held).close()
    console.log(readdirSync('/proc/self/task').filter((tid) => os.getPriority(Number(tid)) === 7).length)
    await app.close()
  `
  const lowered = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url), env: { PATH: process.env.PATH }, encoding: 'utf8'
  }).trim()
  t.equal(lowered, '4', 'all four pool threads, the one that was held too')
})

t.test('the option takes a whole number from 0 to 19', async (t) => {
  for (const threadPoolPriority of [-1, 20, 1.5, '10', Number.NaN]) {
    await t.rejects(buildApp(t, { plugin: { password: { threadPoolPriority: threadPoolPriority as number } } }), {
      code: 'FST_TOKEN_AUTH_INVALID_OPTION',
      message: /"password\.threadPoolPriority" must be a whole number from 0 to 19/
    }, String(threadPoolPriority))
  }
})
