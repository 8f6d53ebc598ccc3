import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp, cheapHash, CHEAP, demoUsers, tokenRequest, type BuildOptions } from './helper.js'
import type { AuthEvent, UserRecord } from '../lib/index.js'
import { createLimiter, LimiterFullError } from '../lib/password/limiter.js'

/*
 * Throttling at the token endpoint (RFC 6749 §4.3.2 makes brute-force protection a MUST):
 * the per-IP limit of @fastify/rate-limit, failures per (username, IP), and the capped
 * per-username backoff. Time is moved by hand (see `fakeClock`), so no test sleeps.
 */

/** A (sub)test: what `t.test` hands its callback. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const WRONG = { grant_type: 'password', username: 'user1', password: 'wrong-password' }
const RIGHT = { grant_type: 'password', username: 'user1', password: 'password1' }

/**
 * Puts `Date.now` under the test's control: it stands still at the real time of the call
 * until the test moves it forward, and is restored at teardown. (`t.clock` from @tapjs/clock
 * is not among tap 21's default plugins, and not installed.)
 */
function fakeClock (tt: Tap): { advance: (ms: number) => void } {
  let now = Date.now()
  tt.capture(Date, 'now', () => now)
  return { advance: (ms) => { now += ms } }
}

/** A findUser over the demo users that counts its calls: one per password verification. */
async function countingFindUser (): Promise<{ findUser: (username: string) => Promise<UserRecord | null>, calls: () => number }> {
  const users = await demoUsers()
  let calls = 0
  return {
    findUser: async (username) => {
      calls += 1
      return users.get(username) ?? null
    },
    calls: () => calls
  }
}

function assertOAuthError (tt: Tap, res: LightMyRequestResponse, status: number, code: string): void {
  tt.equal(res.statusCode, status, `status ${status}`)
  tt.equal(res.json().error, code, `error ${code}`)
  tt.same(Object.keys(res.json()).sort(), ['error', 'error_description'], 'the RFC 6749 §5.2 shape')
  tt.match(res.json().error_description, /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/, 'RFC 6749 §5.2: error_description characters')
  tt.match(res.headers['content-type'], /^application\/json/)
  tt.equal(res.headers['cache-control'], 'no-store')
  tt.equal(res.headers.pragma, 'no-cache')
}

/** Asserts a 429 carrying a whole number of seconds in Retry-After, and returns it. */
function assertThrottled (tt: Tap, res: LightMyRequestResponse): number {
  assertOAuthError(tt, res, 429, 'too_many_requests')
  const retryAfter = res.headers['retry-after']
  tt.match(retryAfter, /^[1-9][0-9]*$/, 'Retry-After is a positive number of seconds')
  return Number(retryAfter)
}

async function app (tt: Tap, options: BuildOptions = {}) {
  return buildApp(tt, options)
}

t.test('per-IP limit on /token (@fastify/rate-limit)', async (t) => {
  t.test('the 4th request within the window gets 429 too_many_requests with Retry-After', async (t) => {
    const counter = await countingFindUser()
    const a = await app(t, { plugin: { rateLimit: { max: 3, timeWindow: 60_000 }, loginThrottle: false, findUser: counter.findUser } })
    for (let i = 0; i < 3; i++) assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    const res = await tokenRequest(a, RIGHT)
    const retryAfter = assertThrottled(t, res)
    t.ok(retryAfter <= 60, 'Retry-After within the window')
    t.equal(counter.calls(), 3, 'the refused request never reached findUser nor argon2')
  })

  t.test('is checked before the body is parsed: a body that would be refused gets 429, not 400/415', async (t) => {
    const counter = await countingFindUser()
    const a = await app(t, { plugin: { rateLimit: { max: 3, timeWindow: 60_000 }, loginThrottle: false, findUser: counter.findUser } })
    for (let i = 0; i < 3; i++) await tokenRequest(a, WRONG)
    // A JSON body would be 400 invalid_request once parsed; an oversized one 413 → invalid_request.
    const json = await a.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(RIGHT) })
    assertThrottled(t, json)
    const big = await a.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a='.padEnd(100_000, 'x') })
    assertThrottled(t, big)
    t.equal(counter.calls(), 3)
  })

  t.test('counts per client IP: another address is not limited', async (t) => {
    const a = await app(t, { plugin: { rateLimit: { max: 3, timeWindow: 60_000 }, loginThrottle: false } })
    for (let i = 0; i < 3; i++) await tokenRequest(a, WRONG)
    assertThrottled(t, await tokenRequest(a, RIGHT))
    const other = await a.inject({ method: 'POST', url: '/token', remoteAddress: '10.1.2.3', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(RIGHT).toString() })
    t.equal(other.statusCode, 200)
  })

  t.test('a per-IP refusal is a login.throttled security event', async (t) => {
    const events: AuthEvent[] = []
    const a = await app(t, { plugin: { rateLimit: { max: 1, timeWindow: 60_000 }, loginThrottle: false, onAuthEvent: (e) => events.push(e) } })
    await tokenRequest(a, WRONG)
    assertThrottled(t, await tokenRequest(a, RIGHT))
    const throttled = events.filter((e) => e.type === 'login.throttled')
    t.equal(throttled.length, 1)
    t.equal(throttled[0]?.reason, 'per_ip')
    t.equal(throttled[0]?.ip, '127.0.0.1')
  })

  t.test('the host\'s other routes are not limited', async (t) => {
    const a = await app(t, { plugin: { rateLimit: { max: 1, timeWindow: 60_000 }, loginThrottle: false } })
    for (let i = 0; i < 3; i++) t.equal((await a.inject('/public')).statusCode, 200)
  })

  t.test('rateLimit: false turns it off', async (t) => {
    // Past the default of 30 a minute; requests without a password never reach argon2.
    const a = await app(t, { plugin: { rateLimit: false, loginThrottle: false } })
    for (let i = 0; i < 35; i++) {
      const res = await tokenRequest(a, { grant_type: 'password', username: 'user1' })
      if (res.statusCode !== 400) t.fail(`request ${i + 1} got ${res.statusCode}`)
    }
    t.equal((await tokenRequest(a, RIGHT)).statusCode, 200)
  })

  t.test('the default allows 30 a minute', async (t) => {
    const a = await app(t, { plugin: { loginThrottle: false } })
    for (let i = 0; i < 30; i++) {
      const res = await tokenRequest(a, { grant_type: 'password', username: 'user1' })
      if (res.statusCode !== 400) t.fail(`request ${i + 1} got ${res.statusCode}`)
    }
    assertThrottled(t, await tokenRequest(a, RIGHT))
  })
})

t.test('failures per (username, IP)', async (t) => {
  t.test('5 wrong passwords, then 429 with Retry-After even for the right password', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false } })
    for (let i = 0; i < 5; i++) assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    const retryAfter = assertThrottled(t, await tokenRequest(a, RIGHT))
    t.ok(retryAfter > 14 * 60 && retryAfter <= 15 * 60, 'the default window is 15 minutes')
  })

  t.test('the window ends: after 15 minutes the right password works', async (t) => {
    const clock = fakeClock(t)
    const a = await app(t, { plugin: { rateLimit: false } })
    for (let i = 0; i < 5; i++) await tokenRequest(a, WRONG)
    clock.advance(15 * 60_000 - 1000)
    assertThrottled(t, await tokenRequest(a, RIGHT))
    clock.advance(1000)
    t.equal((await tokenRequest(a, RIGHT)).statusCode, 200)
  })

  t.test('a configured limit applies', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false, loginThrottle: { perUsernameAndIp: { max: 2, timeWindow: 10_000 } } } })
    for (let i = 0; i < 2; i++) assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    const retryAfter = assertThrottled(t, await tokenRequest(a, RIGHT))
    t.ok(retryAfter <= 10)
  })

  t.test('another IP (trustProxy and X-Forwarded-For) is not blocked by it', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false }, server: { trustProxy: true } })
    const from = (ip: string) => ({ 'x-forwarded-for': ip })
    for (let i = 0; i < 5; i++) assertOAuthError(t, await tokenRequest(a, WRONG, from('203.0.113.1')), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, RIGHT, from('203.0.113.1')))
    t.equal((await tokenRequest(a, RIGHT, from('203.0.113.2'))).statusCode, 200)
  })

  t.test('another IP (the socket address) is not blocked by it', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false } })
    const post = (fields: Record<string, string>, remoteAddress: string) => a.inject({
      method: 'POST', url: '/token', remoteAddress, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(fields).toString()
    })
    for (let i = 0; i < 5; i++) await post(WRONG, '198.51.100.7')
    assertThrottled(t, await post(RIGHT, '198.51.100.7'))
    t.equal((await post(RIGHT, '198.51.100.8')).statusCode, 200)
  })

  t.test('X-Forwarded-For is ignored when trustProxy is not set', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false } })
    for (let i = 0; i < 5; i++) {
      assertOAuthError(t, await tokenRequest(a, WRONG, { 'x-forwarded-for': `203.0.113.${i + 1}` }), 400, 'invalid_grant')
    }
    assertThrottled(t, await tokenRequest(a, RIGHT, { 'x-forwarded-for': '203.0.113.99' }))
  })

  t.test('unknown usernames are throttled exactly like known ones', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false } })
    const unknown = { ...WRONG, username: 'no-such-user' }
    const known: LightMyRequestResponse[] = []
    const ghost: LightMyRequestResponse[] = []
    for (let i = 0; i < 6; i++) {
      known.push(await tokenRequest(a, WRONG))
      ghost.push(await tokenRequest(a, unknown))
    }
    for (let i = 0; i < 6; i++) {
      t.equal(ghost[i]?.statusCode, known[i]?.statusCode, `attempt ${i + 1}: same status`)
      t.same(ghost[i]?.json(), known[i]?.json(), `attempt ${i + 1}: same body`)
      t.equal(ghost[i]?.headers['retry-after'] === undefined, known[i]?.headers['retry-after'] === undefined)
    }
    assertThrottled(t, ghost[5] as LightMyRequestResponse)
  })

  t.test('a successful login resets the count', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false } })
    for (let i = 0; i < 4; i++) await tokenRequest(a, WRONG)
    t.equal((await tokenRequest(a, RIGHT)).statusCode, 200)
    for (let i = 0; i < 5; i++) assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, WRONG))
  })

  t.test('a disabled user\'s logins count as failures', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false } })
    const disabled = { grant_type: 'password', username: 'disabled-user', password: 'password1' }
    for (let i = 0; i < 5; i++) assertOAuthError(t, await tokenRequest(a, disabled), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, disabled))
  })

  t.test('throttling reaches onAuthEvent as login.throttled', async (t) => {
    const events: AuthEvent[] = []
    const a = await app(t, { plugin: { rateLimit: false, onAuthEvent: (event) => { events.push(event) } } })
    for (let i = 0; i < 5; i++) await tokenRequest(a, WRONG)
    t.equal(events.filter((e) => e.type === 'login.throttled').length, 0)
    await tokenRequest(a, RIGHT)
    const throttled = events.filter((e) => e.type === 'login.throttled')
    t.equal(throttled.length, 1)
    t.match(throttled[0], { type: 'login.throttled', username: 'user1', ip: '127.0.0.1', reason: 'per_username_ip' })
    t.notMatch(JSON.stringify(events), /password1|argon2/, 'no password or hash in events')
  })
})

t.test('the race: 50 parallel wrong passwords with a limit of 5 run at most 5 verifications', async (t) => {
  const counter = await countingFindUser()
  const a = await app(t, { plugin: { rateLimit: false, findUser: counter.findUser } })
  const answers = await Promise.all(Array.from({ length: 50 }, () => tokenRequest(a, WRONG)))
  const count = (code: string) => answers.filter((res) => res.json().error === code).length
  t.equal(counter.calls(), 5, 'findUser (once per verification) ran 5 times')
  t.equal(count('invalid_grant'), 5)
  t.equal(count('too_many_requests'), 45)
  t.ok(answers.filter((res) => res.statusCode === 429).every((res) => res.headers['retry-after'] !== undefined))
})

t.test('per-username backoff across IPs', async (t) => {
  const backoff = { perUsernameAndIp: false as const, perUsername: { freeAttempts: 3, maxDelay: 4000 } }
  let ip = 0
  // Every attempt from a new address, so only the per-username count can stop it.
  const fresh = () => ({ 'x-forwarded-for': `192.0.2.${++ip}` })

  t.test('failures from many IPs add up; waits grow exponentially, capped, and end', async (t) => {
    const clock = fakeClock(t)
    const events: AuthEvent[] = []
    const a = await app(t, { plugin: { rateLimit: false, loginThrottle: backoff, onAuthEvent: (e) => { events.push(e) } }, server: { trustProxy: true } })

    for (let i = 0; i < 3; i++) assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    // After the 3rd failure a wait of 1 s starts, for every address and even the right password.
    t.equal(assertThrottled(t, await tokenRequest(a, RIGHT, fresh())), 1)
    t.match(events.at(-1), { type: 'login.throttled', username: 'user1', reason: 'per_username' })

    const waits: number[] = []
    for (let i = 0; i < 4; i++) {
      clock.advance(999)
      // Attempts during a wait are refused and do not extend it.
      assertThrottled(t, await tokenRequest(a, WRONG, fresh()))
      clock.advance((waits.at(-1) ?? 1) * 1000 - 999)
      assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
      waits.push(assertThrottled(t, await tokenRequest(a, RIGHT, fresh())))
    }
    t.same(waits, [2, 4, 4, 4], 'waits double and are capped at maxDelay (4 s)')

    clock.advance(4000)
    t.equal((await tokenRequest(a, RIGHT, fresh())).statusCode, 200, 'no permanent lockout')
    // The success does not clear the per-username count (it would clear an attacker's too):
    // the next failure from anywhere new starts a wait at once.
    clock.advance(4000)
    assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, WRONG, fresh()))
  })

  t.test('a known source is not counted: the user\'s own logins there start no wait for their other devices', async (t) => {
    const clock = fakeClock(t)
    const a = await app(t, { plugin: { rateLimit: false, loginThrottle: backoff }, server: { trustProxy: true } })
    const laptop = { 'x-forwarded-for': '198.51.100.7' }
    t.equal((await tokenRequest(a, RIGHT, laptop)).statusCode, 200, 'the laptop\'s address becomes known')
    // An attack from elsewhere leaves the count past the free attempts, and its last wait ends.
    for (let i = 0; i < 3; i++) assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    clock.advance(1000)
    assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    clock.advance(4000)
    // The user logs in on the laptop, then from a phone on a network never seen: no wait, as
    // no failure came between. Counted, the laptop's login would have started one.
    t.equal((await tokenRequest(a, RIGHT, laptop)).statusCode, 200)
    t.equal((await tokenRequest(a, RIGHT, fresh())).statusCode, 200, 'the phone is not refused')
    // Nor do the laptop's own typos count against the account: only its own window sees them.
    clock.advance(4000)
    assertOAuthError(t, await tokenRequest(a, WRONG, laptop), 400, 'invalid_grant')
    t.equal((await tokenRequest(a, RIGHT, fresh())).statusCode, 200, 'a typo on the laptop starts no wait either')
    // An unknown source's failure still does.
    clock.advance(4000)
    assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, RIGHT, fresh()))
  })

  t.test('the count is forgotten after timeWindow without failures', async (t) => {
    const clock = fakeClock(t)
    const a = await app(t, {
      plugin: { rateLimit: false, loginThrottle: { perUsernameAndIp: false, perUsername: { freeAttempts: 3, timeWindow: 60_000 } } },
      server: { trustProxy: true }
    })
    for (let i = 0; i < 2; i++) await tokenRequest(a, WRONG, fresh())
    clock.advance(60_000)
    for (let i = 0; i < 2; i++) assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    // Had the first two counted, the 3rd failure would have started a wait already.
    assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, WRONG, fresh()))
  })

  t.test('the default: 10 free failures, then a wait', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false, loginThrottle: { perUsernameAndIp: false } }, server: { trustProxy: true } })
    for (let i = 0; i < 10; i++) assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    t.equal(assertThrottled(t, await tokenRequest(a, RIGHT, fresh())), 1)
  })

  t.test('both limits together: attempts refused per IP do not count against the username', async (t) => {
    const a = await app(t, {
      plugin: { rateLimit: false, loginThrottle: { perUsernameAndIp: { max: 2 }, perUsername: { freeAttempts: 4 } } },
      server: { trustProxy: true }
    })
    const same = { 'x-forwarded-for': '192.0.2.200' }
    for (let i = 0; i < 2; i++) assertOAuthError(t, await tokenRequest(a, WRONG, same), 400, 'invalid_grant')
    // Refused per IP: these must not count against the username.
    for (let i = 0; i < 5; i++) assertThrottled(t, await tokenRequest(a, WRONG, same))
    assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    assertOAuthError(t, await tokenRequest(a, WRONG, fresh()), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, WRONG, fresh()))
  })
  t.test('both limits together: the per-IP count is taken back when the per-username wait refuses', async (t) => {
    const clock = fakeClock(t)
    const events: AuthEvent[] = []
    const a = await app(t, {
      plugin: {
        rateLimit: false,
        loginThrottle: { perUsernameAndIp: { max: 3 }, perUsername: { freeAttempts: 1 } },
        onAuthEvent: (e) => { events.push(e) }
      }
    })
    assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    // A 1 s wait per username: these pass the per-IP count first, which must be taken back.
    for (let i = 0; i < 5; i++) assertThrottled(t, await tokenRequest(a, WRONG))
    t.match(events.at(-1), { type: 'login.throttled', reason: 'per_username' })
    clock.advance(1000)
    assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    clock.advance(2000)
    assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    clock.advance(4000)
    // Three failures from this IP: now the per-IP limit refuses.
    assertThrottled(t, await tokenRequest(a, WRONG))
    t.match(events.at(-1), { type: 'login.throttled', reason: 'per_username_ip' })
  })
})

t.test('loginThrottle: false turns both limits off', async (t) => {
  const a = await app(t, { plugin: { rateLimit: false, loginThrottle: false } })
  for (let i = 0; i < 12; i++) assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
  t.equal((await tokenRequest(a, RIGHT)).statusCode, 200)
})

t.test('each limit turns off alone', async (t) => {
  t.test('perUsernameAndIp: false, perUsername: false', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false, loginThrottle: { perUsernameAndIp: false, perUsername: false } } })
    for (let i = 0; i < 12; i++) assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    t.equal((await tokenRequest(a, RIGHT)).statusCode, 200)
  })
  t.test('perUsername: false keeps the per-IP limit', async (t) => {
    const a = await app(t, { plugin: { rateLimit: false, loginThrottle: { perUsername: false } } })
    for (let i = 0; i < 5; i++) await tokenRequest(a, WRONG)
    assertThrottled(t, await tokenRequest(a, RIGHT))
  })
})

t.test('bounded hashing', async (t) => {
  /**
   * Two logins at once with one hashing slot and no queue. The first user's hash is read just
   * before its verification starts (a getter), which opens the gate the second login's
   * findUser waits on: the second then finds the slot taken. argon2 runs on the thread pool,
   * so the first verification cannot finish before the second asks for the slot.
   */
  async function busyApp (tt: Tap, plugin: BuildOptions['plugin'] = {}) {
    const users = await demoUsers()
    const slowHash = await cheapHash('slow-password')
    let open!: () => void
    const gate = new Promise<void>((resolve) => { open = resolve })
    const a = await app(tt, {
      plugin: {
        rateLimit: false,
        password: { ...CHEAP, maxConcurrent: 1, maxQueue: 0 },
        ...plugin,
        findUser: async (username) => {
          if (username === 'slow') {
            return { username: 'slow', get passwordHash () { open(); return slowHash } }
          }
          await gate
          return users.get(username) ?? null
        }
      }
    })
    const first = tokenRequest(a, { grant_type: 'password', username: 'slow', password: 'slow-password' })
    return { a, first }
  }

  t.test('a login finding every slot taken gets 503 temporarily_unavailable with Retry-After', async (t) => {
    const { first, a } = await busyApp(t)
    const second = await tokenRequest(a, RIGHT)
    assertOAuthError(t, second, 503, 'temporarily_unavailable')
    t.match(second.headers['retry-after'], /^[1-9][0-9]*$/)
    t.equal((await first).statusCode, 200, 'the login holding the slot goes through')
    t.equal((await tokenRequest(a, RIGHT)).statusCode, 200, 'the slot is free again')
  })

  t.test('the throttle count of a 503\'d attempt is taken back (per username and IP)', async (t) => {
    const { first, a } = await busyApp(t, { loginThrottle: { perUsernameAndIp: { max: 2 }, perUsername: false } })
    assertOAuthError(t, await tokenRequest(a, WRONG), 503, 'temporarily_unavailable')
    await first
    // Had the 503 counted, the second failure here would be a 429.
    for (let i = 0; i < 2; i++) assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, WRONG))
  })

  t.test('the throttle count of a 503\'d attempt is taken back (per username)', async (t) => {
    const { first, a } = await busyApp(t, { loginThrottle: { perUsernameAndIp: false, perUsername: { freeAttempts: 2 } } })
    assertOAuthError(t, await tokenRequest(a, WRONG), 503, 'temporarily_unavailable')
    await first
    // Had the 503 counted, this failure would be the 2nd and start a wait.
    assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    assertOAuthError(t, await tokenRequest(a, WRONG), 400, 'invalid_grant')
    assertThrottled(t, await tokenRequest(a, WRONG))
  })

  t.test('a queue place lets the second login wait for its turn', async (t) => {
    const { first, a } = await busyApp(t, { password: { ...CHEAP, maxConcurrent: 1, maxQueue: 1 } })
    t.equal((await tokenRequest(a, RIGHT)).statusCode, 200)
    t.equal((await first).statusCode, 200)
  })
})

t.test('a findUser that throws: 500 server_error, and the attempt is not counted', async (t) => {
  let fail = true
  const users = await demoUsers()
  const a = await app(t, {
    plugin: {
      rateLimit: false,
      loginThrottle: { perUsernameAndIp: { max: 1 }, perUsername: false },
      findUser: async (username) => {
        if (fail) throw new Error('database down')
        return users.get(username) ?? null
      }
    }
  })
  assertOAuthError(t, await tokenRequest(a, RIGHT), 500, 'server_error')
  fail = false
  t.equal((await tokenRequest(a, RIGHT)).statusCode, 200)
})

t.test('createLimiter: slots, a FIFO queue, and a refusal when both are full', async (t) => {
  const limiter = createLimiter(1, 2, 60_000)
  const order: string[] = []
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  const first = limiter.run(async () => { await held; order.push('first') })
  t.equal(limiter.full, false, 'one slot taken, the queue empty')
  const second = limiter.run(async () => { order.push('second') })
  const third = limiter.run(async () => { order.push('third'); return 3 })
  t.equal(limiter.full, true, 'the slot and both queue places taken')
  await t.rejects(limiter.run(async () => order.push('fourth')), LimiterFullError)
  release()
  t.equal(await third, 3)
  await Promise.all([first, second])
  t.same(order, ['first', 'second', 'third'])
  t.equal(limiter.full, false)
  // A failing task frees its slot too.
  await t.rejects(limiter.run(async () => { throw new Error('boom') }), { message: 'boom' })
  t.equal(await limiter.run(async () => 'ok'), 'ok')
})
