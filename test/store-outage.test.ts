import t from 'tap'
import { createMemoryStore, StoreUnavailableError, type AuthStore } from '../lib/index.js'
import { bearer, buildApp, login, tokenRequest } from './helper.js'

/*
 * A store that goes away while the app runs, without Redis: any store that throws
 * StoreUnavailableError gets the same answers as the Redis store does (test/store-faults.test.ts
 * covers a real Redis outage): 503 with Retry-After from the endpoints, fail-closed (or, when
 * asked, fail-open) in `authenticate`, and recovery without a restart.
 */

/**
 * The memory store behind a switch: while `down`, every call rejects as a broken backend would.
 * `sync`: the calls answer, and fail, at once instead, as a store answering from memory may.
 */
function switchableStore (mode: 'async' | 'sync' = 'async'): { store: AuthStore, setDown: (down: boolean) => void } {
  const inner = createMemoryStore()
  let down = false
  const store = new Proxy(inner, {
    get (target, name, receiver) {
      const value = Reflect.get(target, name, receiver)
      if (typeof value !== 'function' || name === 'close') return value
      const call = (...args: unknown[]): unknown => {
        if (down) throw new StoreUnavailableError()
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
      return mode === 'sync' ? call : async (...args: unknown[]) => call(...args)
    }
  })
  return { store, setDown: (value) => { down = value } }
}

const PASSWORD_GRANT = { grant_type: 'password', username: 'user1', password: 'password1' }

t.test('the token endpoint answers 503 temporarily_unavailable with Retry-After, then recovers', async (t) => {
  const { store, setDown } = switchableStore()
  const app = await buildApp(t, { plugin: { store, refreshTokens: true } })
  setDown(true)
  const res = await tokenRequest(app, PASSWORD_GRANT)
  t.equal(res.statusCode, 503)
  t.same(Object.keys(res.json()).sort(), ['error', 'error_description'])
  t.equal(res.json().error, 'temporarily_unavailable')
  t.equal(res.headers['retry-after'], '1')
  t.equal(res.headers['cache-control'], 'no-store')
  t.notMatch(res.body, /at .*\.ts:|Error:/, 'no stack trace')
  setDown(false)
  t.equal((await tokenRequest(app, PASSWORD_GRANT)).statusCode, 200)
})

for (const mode of ['async', 'sync'] as const) {
  t.test(`authenticate with revocable access tokens fails closed by default (a store answering ${mode})`, async (t) => {
    const { store, setDown } = switchableStore(mode)
    const app = await buildApp(t, { plugin: { store, revocableAccessTokens: true } })
    const token = await login(app)
    setDown(true)
    const res = await app.inject({ url: '/protected', headers: bearer(token) })
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'FST_TOKEN_AUTH_STORE_UNAVAILABLE')
    t.equal(res.headers['retry-after'], '1')
    setDown(false)
    t.equal((await app.inject({ url: '/protected', headers: bearer(token) })).statusCode, 200)
  })

  t.test(`failOpen accepts tokens unchecked while the store is away (a store answering ${mode})`, async (t) => {
    const { store, setDown } = switchableStore(mode)
    const app = await buildApp(t, { plugin: { store, revocableAccessTokens: { failOpen: true } } })
    const token = await login(app)
    setDown(true)
    t.equal((await app.inject({ url: '/protected', headers: bearer(token) })).statusCode, 200)
  })
}
