import t from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster } from 'ioredis'
import { createRedisStore, type AuthEvent, type AuthStore } from '../lib/index.js'
import { buildApp, testPrefix, tokenRequest } from './helper.js'
import { storeContract } from './store-contract.js'

/*
 * Beyond one Redis: a local 3-master Redis Cluster, started from this machine's `redis-server`
 * on spare loopback ports in a temporary directory, and torn down afterwards. The store
 * contract and the rotation race run against an ioredis Cluster client: every script touches
 * keys of one hash tag, or Redis would refuse it with CROSSSLOT.
 */

function installed (command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const SKIP = installed('redis-server') && installed('redis-cli') ? false : 'redis-server or redis-cli is not installed: the Redis Cluster tests are skipped'

/** A port that is free, and whose cluster bus port (port + 10000) is free too. */
async function sparePort (taken: Set<number>): Promise<number> {
  const free = async (port: number) => await new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 20000)
    if (!taken.has(port) && await free(port) && await free(port + 10000)) {
      taken.add(port)
      return port
    }
  }
}

function cli (port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

async function until (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if (check()) return
    } catch {}
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

t.test('a 3-master Redis Cluster', { skip: SKIP }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fja-cluster-'))
  const servers: ChildProcess[] = []
  t.teardown(async () => {
    for (const server of servers) server.kill('SIGKILL')
    await Promise.all(servers.map(async (server) => server.exitCode === null && server.signalCode === null
      ? await new Promise((resolve) => server.once('exit', resolve))
      : undefined))
    rmSync(dir, { recursive: true, force: true })
  })

  const taken = new Set<number>()
  const ports = [await sparePort(taken), await sparePort(taken), await sparePort(taken)]
  for (const port of ports) {
    servers.push(spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--save', '', '--appendonly', 'no'
    ], { stdio: 'ignore' }))
  }
  for (const port of ports) await until(() => cli(port, 'ping').trim() === 'PONG', `redis-server on ${port}`)
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
    { stdio: 'ignore' })
  for (const port of ports) await until(() => cli(port, 'cluster', 'info').includes('cluster_state:ok'), `the cluster state on ${port}`)

  const clients: Cluster[] = []
  t.teardown(() => { for (const client of clients) client.disconnect() })
  async function clusterClient (): Promise<Cluster> {
    const client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 1 } })
    client.on('error', () => {})
    clients.push(client)
    await new Promise((resolve, reject) => { client.once('ready', resolve); client.once('error', reject) })
    return client
  }

  const client = await clusterClient()
  const owners = new Map<AuthStore, string>()
  t.test('the store contract', async (t) => {
    storeContract(t, {
      makeStore: async () => {
        const prefix = testPrefix()
        const store = createRedisStore({ client, prefix })
        owners.set(store, prefix)
        return store
      },
      keyTtls: async (store) => {
        const ttls = new Map<string, number>()
        for (const node of client.nodes('master')) {
          for (const key of await node.keys(`${owners.get(store)}*`)) ttls.set(key, await node.pttl(key))
        }
        return ttls
      }
    })
  })

  t.test('two instances on the cluster: 10 refreshes at once with one token, one succeeds', async (t) => {
    const prefix = testPrefix()
    const events: AuthEvent[] = []
    const instance = async () => buildApp(t, {
      plugin: { store: createRedisStore({ client: await clusterClient(), prefix }), refreshTokens: { retryGrace: 0 }, rateLimit: false, onAuthEvent: (e) => events.push(e) }
    })
    const a = await instance()
    const b = await instance()
    const login = await tokenRequest(a, { grant_type: 'password', username: 'user1', password: 'password1' })
    const token = login.json().refresh_token as string
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      tokenRequest(i % 2 === 0 ? a : b, { grant_type: 'refresh_token', refresh_token: token })))
    t.equal(answers.filter((r) => r.statusCode === 200).length, 1)
    t.equal(answers.filter((r) => r.statusCode === 400).length, 9)
    t.equal(events.filter((e) => e.type === 'refresh.reuse').length, 9)

    const failures = await Promise.all(Array.from({ length: 6 }, (_, i) =>
      tokenRequest(i % 2 === 0 ? a : b, { grant_type: 'password', username: 'admin', password: 'wrong' })))
    t.equal(failures.filter((r) => r.statusCode === 429).length, 1, 'login failures add up on the cluster too')
  })
})
