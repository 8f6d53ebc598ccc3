import t from 'tap'
import { createMemoryStore, createRedisStore, type AuthStore } from '../lib/index.js'
import { resolveOptions } from '../lib/options/resolve.js'
import { createLoginThrottle } from '../lib/throttle/login-throttle.js'
import { buildApp, FORM, form, NO_REDIS, redisClient, SECRET, testPrefix } from './helper.js'

/*
 * A simulated day under attack (issue 13), with the default limits, the real throttle and store
 * code and a fake clock: an attacker makes 1 000 wrong-password attempts an hour on user1, from
 * 1 000 addresses, while user1 logs in through /token every half hour from the address they use.
 * The victim is never refused, and the attacker's password checks stay within what
 * docs/login-throttling.md says the defaults allow in a day: 114 (10 free, 10 growing waits,
 * then one per 15-minute wait).
 *
 * The attacker's 24 000 attempts go to the login throttle the app builds from the same options
 * and store, not through HTTP, to keep the day short: an attempt the throttle allows is one
 * password check, and one it refuses is a 429 with no check (see known-sources.test.ts and the
 * race test in throttle.test.ts, which show both through /token).
 */

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

// 24 000 attempts a store: a few seconds on an idle machine, far more on a busy one.
t.setTimeout(180_000)

const DOCUMENTED_CHECKS_PER_DAY = 114
const HOUR = 3_600_000
const BATCH = 50
const STEP = 180_000 // fifty attempts every 3 minutes: 1 000 an hour
const VICTIM = '198.51.100.10'

async function simulateDay (t: Tap, store: AuthStore): Promise<void> {
  let now = Date.now()
  // Not t.capture, which records every call: the day makes some hundred thousand.
  const realNow = Date.now
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const app = await buildApp(t, { plugin: { store } })
  const attacker = createLoginThrottle({ ...resolveOptions({ secret: SECRET }), store })
  const login = () => app.inject({ method: 'POST', url: '/token', remoteAddress: VICTIM, headers: FORM, payload: form({ grant_type: 'password', username: 'user1', password: 'password1' }) })

  t.equal((await login()).statusCode, 200, 'the victim logs in once before the attack')
  const victimRefusals: number[] = []
  let attempts = 0
  let checks = 0
  for (let step = 0; step < (24 * HOUR) / STEP; step++) {
    const batch = Array.from({ length: BATCH }, () => {
      const i = attempts++ % 1000
      return attacker('user1', `10.0.${i >> 8}.${i & 255}`)
    })
    // An allowed attempt is checked, found wrong, and left counted as a failure.
    for (const outcome of await Promise.all(batch)) if ('succeeded' in outcome) checks += 1
    if (step % 10 === 5) {
      const res = await login()
      if (res.statusCode !== 200) victimRefusals.push(res.statusCode)
    }
    now += STEP
  }
  t.equal(attempts, 24_000)
  t.same(victimRefusals, [], 'the victim\'s 48 logins from their known address all succeeded')
  t.ok(checks <= DOCUMENTED_CHECKS_PER_DAY, `the attacker's password checks (${checks}) are within the documented ${DOCUMENTED_CHECKS_PER_DAY}`)
  t.ok(checks >= DOCUMENTED_CHECKS_PER_DAY - 5, 'and the bound is not loose: an attacker at this rate nearly reaches it')
  const elsewhere = await app.inject({ method: 'POST', url: '/token', remoteAddress: '192.0.2.1', headers: FORM, payload: form({ grant_type: 'password', username: 'user1', password: 'password1' }) })
  t.equal(elsewhere.statusCode, 429, 'from a new address the victim meets the backoff')
}

t.test('a simulated day against the memory store', async (t) => {
  await simulateDay(t, createMemoryStore())
})

t.test('a simulated day against the Redis store', { skip: NO_REDIS }, async (t) => {
  const prefix = testPrefix()
  await simulateDay(t, createRedisStore({ client: await redisClient(t, prefix), prefix }))
})
