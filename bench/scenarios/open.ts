/*
 * The open server (no rate limits): what a forged token costs, /token against the machine's own
 * hashing rate, and GET /protected latency idle and during a login flood offered at a fixed rate.
 * (What a valid token costs is the `overhead` scenario.)
 */
import { createHmac, randomBytes } from 'node:crypto'
import { expect, load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { paced } from '../harness/paced.js'
import { probeWithEventLoopDelay, type LatencyWindow } from '../harness/probe.js'
import { rawArgon2 } from '../harness/raw-argon2.js'
import { FORM, login, RIGHT } from '../harness/requests.js'
import { withServer } from '../harness/server-process.js'
import { CONNECTIONS, type HashingBounds, type Settings } from '../harness/settings.js'

/** The login flood offers this many times the logins the machine can hash. */
const FLOOD_FACTOR = 10

export interface OpenFigures {
  forged: LoadResult
  rawArgon2PerSecond: number
  token: LoadResult
  idle: LatencyWindow
  flood: LatencyWindow & { token: LoadResult, connections: number, offered: number }
}

/** A forged token, /token, and the login flood at a fixed rate. */
export async function runOpen ({ time }: Settings, { maxConcurrent, maxQueue, maxWait }: HashingBounds): Promise<{ figures: OpenFigures, argon2Parameters: string }> {
  // RATE_LIMIT=off: every login reaches the hashing pool, the worst case for a flood.
  return await withServer('open', { RATE_LIMIT: 'off' }, async (server) => {
    const { url } = server
    const token = (await login(url)).access_token as string
    // The same claims under another key: a token that only its signature gives away.
    const [header, payload] = token.split('.')
    const forge = (): string => `${header}.${payload}.${createHmac('sha256', randomBytes(32)).update(`${header}.${payload}`).digest('base64url')}`

    log('warming up')
    await load(undefined, { url: `${url}/protected`, headers: { authorization: `Bearer ${token}` }, connections: CONNECTIONS, duration: time.warm, latencies: false })
    log('GET /protected, forged token')
    // A new forged signature on every request, as an attacker would send: no cache can help.
    const forged = await load(server, {
      url: `${url}/protected`,
      connections: CONNECTIONS,
      duration: time.run,
      requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${forge()}` } }) }]
    })
    expect('GET /protected with a forged token', forged, '401')

    log(`raw argon2.verify, ${maxConcurrent} at once`)
    const raw = await rawArgon2(maxConcurrent, time.raw)
    log('POST /token, right credentials')
    // Twice the running slots: the queue stays short of full, so every request is a login.
    const tokenResult = await load(server, { url: `${url}/token`, method: 'POST', headers: FORM, body: RIGHT, connections: 2 * maxConcurrent, duration: time.run })
    expect('POST /token', tokenResult, '200')

    log('GET /protected latency, idle')
    const idle = await probeWithEventLoopDelay(server, token, time.run)

    // The flood: FLOOD_FACTOR times the logins this machine can hash (the raw argon2 rate just
    // measured), from enough connections to keep that rate up while each login waits its
    // `maxWait` for a slot, so most logins wait in the queue and get 503 when their wait runs
    // out. The rate is fixed rather than "as fast as the client can": on a small machine a
    // client at full speed takes the CPU the server needs, and the figures would measure the
    // client. The logins are spread evenly over each second (bench/harness/paced.ts says why not
    // autocannon's `overallRate`), from a worker thread, so the probe in this thread is not
    // delayed by the flood's own client work.
    const offered = Math.round(FLOOD_FACTOR * raw.perSecond)
    const connections = Math.min(maxQueue, Math.ceil(offered * maxWait / 1000)) + 2 * maxConcurrent
    log(`GET /protected latency during a login flood (${offered} logins a second from ${connections} connections)`)
    const flood = paced(server, {
      url: `${url}/token`, method: 'POST', headers: FORM, body: RIGHT, connections, rate: offered, seconds: time.warm + time.run + 1
    })
    await new Promise((resolve) => setTimeout(resolve, time.warm * 1000))
    const during = await probeWithEventLoopDelay(server, token, time.run)
    const floodResult = await flood
    expect('the login flood', floodResult, '200')
    // A wait runs out only in a run longer than maxWait (not in a smoke run).
    if (time.warm + time.run > maxWait / 1000) expect('the login flood', floodResult, '503')
    return {
      figures: {
        forged,
        rawArgon2PerSecond: raw.perSecond,
        token: tokenResult,
        idle,
        flood: { ...during, token: floodResult, connections, offered }
      },
      argon2Parameters: raw.parameters
    }
  })
}
