import t from 'tap'
import { randomBytes } from 'node:crypto'
import { buildServer, trustProxyOf } from '../examples/server.js'
import { FORM, form } from './helper.js'

/*
 * The example server behind proxies (issue 13): TRUST_PROXY is a hop count or a list of proxy
 * addresses, never `true`, under which every client picks its own address per request.
 */

const BASE = { LOG_LEVEL: 'silent', JWT_SECRET: 'example-test-secret-2f9c4e1a7b3d8f0e6c5a' }
// No password: answered 400 before any hashing, and counted by the per-IP limit (30 a minute).
const CHEAP = form({ grant_type: 'password' })

t.test('TRUST_PROXY=1: the address the proxy appended counts, whatever the client wrote before it', async (t) => {
  const app = await buildServer({ ...BASE, TRUST_PROXY: '1' })
  t.teardown(() => app.close())
  const statuses: number[] = []
  for (let i = 0; i < 31; i++) {
    const forged = `${randomBytes(4).join('.')}`
    const res = await app.inject({ method: 'POST', url: '/token', remoteAddress: '10.0.0.1', headers: { ...FORM, 'x-forwarded-for': `${forged}, 203.0.113.50` }, payload: CHEAP })
    statuses.push(res.statusCode)
  }
  t.same(statuses, [...Array(30).fill(400), 429], 'all counted as 203.0.113.50: the 31st is refused')
  const other = await app.inject({ method: 'POST', url: '/token', remoteAddress: '10.0.0.1', headers: { ...FORM, 'x-forwarded-for': '203.0.113.51' }, payload: CHEAP })
  t.equal(other.statusCode, 400, 'another client behind the same proxy is counted apart')
})

t.test('TRUST_PROXY=1: a forwarded value that is no IP address counts as the socket address, however long', async (t) => {
  const app = await buildServer({ ...BASE, TRUST_PROXY: '1' })
  t.teardown(() => app.close())
  const statuses: number[] = []
  for (let i = 0; i < 31; i++) {
    const junk = `junk-${i}-${'x'.repeat(15_000)}`
    statuses.push((await app.inject({ method: 'POST', url: '/token', remoteAddress: '192.0.2.7', headers: { ...FORM, 'x-forwarded-for': junk }, payload: CHEAP })).statusCode)
  }
  t.same(statuses, [...Array(30).fill(400), 429], 'all counted as 192.0.2.7')
})

t.test('TRUST_PROXY as proxy addresses: X-Forwarded-For is believed from those proxies only', async (t) => {
  const app = await buildServer({ ...BASE, TRUST_PROXY: '10.0.0.0/8, 192.0.2.1' })
  t.teardown(() => app.close())
  for (let i = 0; i < 30; i++) {
    await app.inject({ method: 'POST', url: '/token', remoteAddress: '198.51.100.9', headers: { ...FORM, 'x-forwarded-for': `203.0.113.${i}` }, payload: CHEAP })
  }
  const direct = await app.inject({ method: 'POST', url: '/token', remoteAddress: '198.51.100.9', headers: { ...FORM, 'x-forwarded-for': '203.0.113.200' }, payload: CHEAP })
  t.equal(direct.statusCode, 429, 'a client that is no proxy is counted by its socket address')
  const proxied = await app.inject({ method: 'POST', url: '/token', remoteAddress: '10.1.2.3', headers: { ...FORM, 'x-forwarded-for': '198.51.100.9' }, payload: CHEAP })
  t.equal(proxied.statusCode, 429, 'the same client through a trusted proxy is the same client')
  const another = await app.inject({ method: 'POST', url: '/token', remoteAddress: '192.0.2.1', headers: { ...FORM, 'x-forwarded-for': '198.51.100.10' }, payload: CHEAP })
  t.equal(another.statusCode, 400)
})

t.test('TRUST_PROXY=true is refused at start with a message that says what to set', async (t) => {
  for (const value of ['true', 'TRUE', 'yes']) {
    await t.rejects(buildServer({ ...BASE, TRUST_PROXY: value }), { message: /TRUST_PROXY=true would let every client choose its own address.*TRUST_PROXY=1/ })
  }
})

t.test('trustProxyOf: off, hop counts, lists, and what it refuses', async (t) => {
  t.equal(trustProxyOf(undefined), false)
  t.equal(trustProxyOf(''), false)
  t.equal(trustProxyOf('0'), false)
  const two = trustProxyOf('2') as (address: string, hop: number) => boolean
  t.same([two('x', 0), two('x', 1), two('x', 2)], [true, true, false])
  t.same(trustProxyOf(' 10.0.0.1 , fd00::/8,192.168.0.0/16 '), ['10.0.0.1', 'fd00::/8', '192.168.0.0/16'])
  for (const bad of ['proxy.local', '10.0.0.1/33', 'fd00::/129', '10.0.0.0/0', '10.0.0.0/8/1', '10.0.0.0/x', '1,']) {
    t.throws(() => trustProxyOf(bad), { message: /neither a number of proxies nor a proxy address/ }, bad)
  }
})
