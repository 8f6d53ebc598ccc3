import t, { type Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import { availableCpus, defaultHashingConcurrency } from '../lib/options/defaults.js'

/*
 * The default hashing pool is sized from the CPUs the process can actually keep busy: its CPU
 * affinity (os.availableParallelism) and, in a container, its cgroup CPU quota, which the
 * affinity does not show. Reading the quota never fails the plugin: an unreadable or odd file
 * counts as no quota.
 */

const V2 = '/sys/fs/cgroup/cpu.max'
const V1_QUOTA = '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'
const V1_PERIOD = '/sys/fs/cgroup/cpu/cpu.cfs_period_us'

/** Makes the cgroup files read as `files` (absent when not listed); every other file reads as usual. */
function cgroupFiles (t: Test, files: Partial<Record<string, string | Error>>): void {
  const real = fs.readFileSync
  t.capture(fs, 'readFileSync', ((path: fs.PathOrFileDescriptor, options?: unknown) => {
    if (typeof path === 'string' && path.startsWith('/sys/fs/cgroup/')) {
      const content = files[path]
      if (content === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
      if (content instanceof Error) throw content
      return content
    }
    return (real as (p: fs.PathOrFileDescriptor, o?: unknown) => string | Buffer)(path, options)
  }) as typeof fs.readFileSync)
}

t.beforeEach((t) => {
  const saved = process.env.UV_THREADPOOL_SIZE
  delete process.env.UV_THREADPOOL_SIZE
  t.teardown(() => {
    if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE
    else process.env.UV_THREADPOOL_SIZE = saved
  })
  t.capture(os, 'availableParallelism', () => 16)
})

t.test('without a cgroup quota: the CPUs the process may run on', async (t) => {
  cgroupFiles(t, {})
  t.equal(availableCpus(), 16)
  t.equal(defaultHashingConcurrency(), 4, 'libuv\'s thread pool bounds it')
})

t.test('cgroup v2 cpu.max: the quota, rounded down', async (t) => {
  cgroupFiles(t, { [V2]: '250000 100000\n' })
  t.equal(availableCpus(), 2)
  t.equal(defaultHashingConcurrency(), 1, 'one CPU left to the event loop')
})

t.test('cgroup v2 cpu.max of "max": no quota', async (t) => {
  cgroupFiles(t, { [V2]: 'max 100000\n' })
  t.equal(availableCpus(), 16)
})

t.test('cgroup v1 cfs quota and period', async (t) => {
  cgroupFiles(t, { [V1_QUOTA]: '300000\n', [V1_PERIOD]: '100000\n' })
  t.equal(availableCpus(), 3)
  t.equal(defaultHashingConcurrency(), 2)
})

t.test('cgroup v1 without a quota (-1)', async (t) => {
  cgroupFiles(t, { [V1_QUOTA]: '-1\n', [V1_PERIOD]: '100000\n' })
  t.equal(availableCpus(), 16)
})

t.test('a quota under one CPU still leaves one CPU, and one hashing slot', async (t) => {
  cgroupFiles(t, { [V2]: '50000 100000' })
  t.equal(availableCpus(), 1)
  t.equal(defaultHashingConcurrency(), 1)
})

t.test('a quota above the affinity: the affinity', async (t) => {
  t.capture(os, 'availableParallelism', () => 2)
  cgroupFiles(t, { [V2]: '800000 100000' })
  t.equal(availableCpus(), 2)
})

t.test('unreadable or odd files never fail: no quota', async (t) => {
  const cases: Array<Partial<Record<string, string | Error>>> = [
    { [V2]: new Error('EACCES') },
    { [V2]: '' },
    { [V2]: 'garbage' },
    { [V2]: '100000 0' },
    { [V1_QUOTA]: '100000' },
    { [V1_QUOTA]: 'x', [V1_PERIOD]: 'y' }
  ]
  for (const files of cases) {
    cgroupFiles(t, files)
    t.equal(availableCpus(), 16, JSON.stringify(Object.values(files).map(String)))
  }
})
