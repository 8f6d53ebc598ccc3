/*
 * The PostgreSQL store, when DATABASE_URL is set and this build has one: what a login, a token
 * rotation and an authenticated request with revocable access tokens cost when the counters,
 * token families and revocations live in PostgreSQL. The example server runs on the store with
 * STORE_DATABASE_URL, in a schema of its own that is dropped afterwards.
 *
 * GET /protected is measured in turns with GET /public on the same server, so its ratio to
 * /public can be read beside the memory store's (the open scenario's rows) in the same run.
 */
import type autocannon from 'autocannon'
import { alternate, expect, load, type LoadResult } from '../harness/load.js'
import { log } from '../harness/log.js'
import { FORM, login, nextAddress, RIGHT } from '../harness/requests.js'
import { withServer } from '../harness/server-process.js'
import { CONNECTIONS, type HashingBounds, type Settings } from '../harness/settings.js'

export type PostgresFigures =
  | { skipped: string }
  | { token: LoadResult, refresh: LoadResult, public: LoadResult, protected: LoadResult }
  | { error: string }

/** Runs `sql` on DATABASE_URL through the build's own peer, pg. */
async function admin (databaseUrl: string, sql: string): Promise<void> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

export async function runPostgres ({ time, rounds }: Settings, { maxConcurrent }: HashingBounds): Promise<PostgresFigures> {
  const databaseUrl = process.env.DATABASE_URL
  if (databaseUrl === undefined || databaseUrl === '') return { skipped: 'DATABASE_URL is not set' }
  const exported = Object.keys(await import('fastify-token-auth'))
  if (!exported.includes('createPostgresStore')) return { skipped: 'this build of fastify-token-auth has no PostgreSQL store' }
  const schema = `fja_bench_${process.pid}`
  try {
    return await withServer('postgres', { TRUST_PROXY: '1', STORE_DATABASE_URL: databaseUrl, STORE_DATABASE_SCHEMA: schema }, async (server): Promise<PostgresFigures> => {
      const { url } = server
      // A new address per request keeps the per-address limit out of the way; its counters, and
      // the login counters, still live in PostgreSQL.
      const fromNewAddress = (body: string): autocannon.Request[] => [{
        method: 'POST',
        setupRequest: (request) => ({ ...request, headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() }, body })
      }]
      log('PostgreSQL: POST /token, right credentials')
      const token = await load(server, { url: `${url}/token`, connections: 2 * maxConcurrent, duration: time.run, requests: fromNewAddress(RIGHT) })
      expect('POST /token with PostgreSQL', token, '200')

      // Each connection follows its own refresh-token family: every answer rotates the token.
      const chains: string[] = []
      while (chains.length < CONNECTIONS) chains.push((await login(url, { 'x-forwarded-for': nextAddress() })).refresh_token as string)
      let next = 0
      log('PostgreSQL: POST /token, refresh grant')
      const refresh = await load(server, {
        url: `${url}/token`,
        connections: CONNECTIONS,
        duration: time.run,
        setupClient: (client) => {
          let current = chains[next++ % chains.length] as string
          client.setRequests([{
            method: 'POST',
            setupRequest: (request) => ({
              ...request,
              headers: { ...FORM, ...request.headers, 'x-forwarded-for': nextAddress() },
              body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(current)}`
            }),
            onResponse: (status, body) => {
              if (status === 200) current = (JSON.parse(body) as { refresh_token: string }).refresh_token
            }
          }])
        }
      })
      expect('the refresh grant with PostgreSQL', refresh, '200')

      // The example server has revocable access tokens: each /protected asks the store.
      const bearer = { authorization: `Bearer ${(await login(url, { 'x-forwarded-for': nextAddress() })).access_token as string}` }
      log('PostgreSQL: GET /public and GET /protected, in turns')
      const [publicResult, protectedResult] = await alternate(server, [
        { url: `${url}/public`, connections: CONNECTIONS },
        { url: `${url}/protected`, headers: bearer, connections: CONNECTIONS }
      ], time.run, rounds) as [LoadResult, LoadResult]
      expect('GET /protected with PostgreSQL', protectedResult, '200')
      return { token, refresh, public: publicResult, protected: protectedResult }
    })
  } catch (error) {
    return { error: (error as Error).message }
  } finally {
    await admin(databaseUrl, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
  }
}
