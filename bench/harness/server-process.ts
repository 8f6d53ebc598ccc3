/*
 * The server under test in a process of its own: bench/server.ts, which runs the example
 * server, started with the example server's environment variables and asked for its figures
 * (CPU time, memory, event-loop delay) over the IPC channel, so that reading them adds no
 * request to what is measured.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ServerMessage, ServerStats } from '../server.js'
import { SERVER_CPU } from './pinning.js'

export interface BenchServer {
  url: string
  stats: () => Promise<ServerStats>
  command: (cmd: 'gc' | 'reset-eld') => Promise<void>
  stop: () => Promise<void>
}

/** One signing secret for every server of the run. */
const SECRET = randomBytes(32).toString('base64url')

const children = new Set<ChildProcess>()
process.on('exit', () => { killServers() })

/** Kills every server still running: the bench is ending, whether it finished or not. */
export function killServers (): void {
  for (const child of children) child.kill('SIGKILL')
}

export interface ServerOptions {
  /** Which app: the example server (the default), the bare Fastify app, or the hand-written peer. */
  app?: 'example' | 'bare' | 'peer'
  /**
   * Runs the server, every thread of it, on one core (SERVER_CPU) from its start, so that it
   * sizes its hashing pool from that one core as it would in a one-CPU container.
   */
  pinned?: boolean
}

/**
 * BENCH_CPU_PROF=<dir>: every server writes V8 CPU profiles (`--cpu-prof`) when it stops, one per
 * thread (the main thread's is the largest), in a folder named after the server;
 * bench/README.md says how to read one.
 */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF

/** Starts bench/server.ts with the example server's environment variables. */
export async function startServer (name: string, env: Record<string, string>, { app = 'example', pinned = false }: ServerOptions = {}): Promise<BenchServer> {
  const base = { ...process.env }
  // The Redis part passes REDIS_URL on purpose; everything else runs on the memory store.
  delete base.REDIS_URL
  delete base.STORE_DATABASE_URL
  const script = fileURLToPath(new URL('../server.ts', import.meta.url))
  const execArgv = ['--import', 'tsx', '--expose-gc']
  if (CPU_PROF_DIR !== undefined && CPU_PROF_DIR !== '') {
    const dir = join(CPU_PROF_DIR, `${name}-${app}`)
    mkdirSync(dir, { recursive: true })
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`)
  }
  const options = {
    // Request logs off (they would measure pino), security events (warn) on, as in production.
    env: { ...base, LOG_LEVEL: 'warn', JWT_SECRET: SECRET, BENCH_APP: app, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'] as Array<'ignore' | 'pipe' | 'ipc'>
  }
  // taskset execs node in its place, so the IPC channel reaches node as it would through fork().
  const child = pinned
    ? spawn('taskset', ['-c', String(SERVER_CPU), process.execPath, ...execArgv, script], options)
    : fork(script, [], { ...options, execArgv })
  children.add(child)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })

  /** Waits for the first message that `match` accepts; fails if the server exits first. */
  function receive<T> (what: string, match: (message: ServerMessage) => T | undefined, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { done(); reject(new Error(`${name} server: no ${what} within ${timeoutMs} ms`)) }, timeoutMs)
      const onMessage = (message: ServerMessage): void => {
        const value = match(message)
        if (value !== undefined) { done(); resolve(value) }
      }
      const onExit = (code: number | null): void => {
        done()
        reject(new Error(`${name} server exited (${code ?? 'signal'}): ${stderr.trim() || 'no output'}`))
      }
      const done = (): void => { clearTimeout(timer); child.off('message', onMessage); child.off('exit', onExit) }
      child.on('message', onMessage)
      child.on('exit', onExit)
    })
  }

  let lastId = 0
  async function ask (cmd: 'stats' | 'gc' | 'reset-eld'): Promise<Extract<ServerMessage, { type: 'answer' }>> {
    const id = ++lastId
    const answer = receive(`answer to ${cmd}`, (m) => m.type === 'answer' && m.id === id ? m : undefined)
    child.send({ cmd, id })
    return answer
  }

  const port = await receive('ready message', (m) => m.type === 'ready' ? m.port : undefined)
  return {
    url: `http://127.0.0.1:${port}`,
    async stats () {
      return (await ask('stats')).stats as ServerStats
    },
    async command (cmd) {
      await ask(cmd)
    },
    async stop () {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
      children.delete(child)
    }
  }
}

/** Runs `fn` against a fresh server and always stops it. */
export async function withServer<T> (name: string, env: Record<string, string>, fn: (server: BenchServer) => Promise<T>, options: ServerOptions = {}): Promise<T> {
  const server = await startServer(name, env, options)
  try {
    return await fn(server)
  } finally {
    await server.stop()
  }
}

/** Runs `fn` against fresh servers, started side by side (a start is mostly waiting), and always stops them. */
export async function withServers<T> (specs: Array<[name: string, env: Record<string, string>, options: ServerOptions]>, fn: (servers: BenchServer[]) => Promise<T>): Promise<T> {
  const started = await Promise.allSettled(specs.map(async ([name, env, options]) => await startServer(name, env, options)))
  const servers = started.flatMap((s) => s.status === 'fulfilled' ? [s.value] : [])
  try {
    const failed = started.find((s) => s.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return await fn(servers)
  } finally {
    await Promise.all(servers.map(async (server) => await server.stop()))
  }
}
