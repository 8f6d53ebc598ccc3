import t from 'tap'
import { register } from 'node:module'
import { buildApp, captureLogs, cheapHash, tokenRequest } from './helper.js'

// An app whose users still carry bcrypt hashes but that did not install the optional `bcrypt`
// peer. This file makes `bcrypt` unresolvable for its own process, as if it were not installed:
// a resolve hook (Node's module customisation API) fails the lookup before anything imports it.

register('data:text/javascript,' + encodeURIComponent(`
  export async function resolve (specifier, context, next) {
    if (specifier === 'bcrypt') {
      const error = new Error("Cannot find package 'bcrypt'")
      error.code = 'ERR_MODULE_NOT_FOUND'
      throw error
    }
    return next(specifier, context)
  }
`))

const PASSLIB_2B = '$2b$04$nuP.554qX4ckptRuNh4Z7eJ5uYQSXeFrH350wig3cNzT4xWDH9r1K' // 'password1'

t.test('without the bcrypt peer: one clear log error naming what to install; the login fails as any other', async (t) => {
  await t.rejects(import('bcrypt' as string), { code: 'ERR_MODULE_NOT_FOUND' }, 'the peer is not resolvable here')

  const { stream, entries } = captureLogs()
  const argon2Hash = await cheapHash('password1')
  const app = await buildApp(t, {
    server: { logger: { level: 'info', stream } },
    plugin: {
      rateLimit: false,
      loginThrottle: false,
      findUser: (name) => name === 'legacy'
        ? { username: 'legacy', passwordHash: PASSLIB_2B }
        : name === 'user1' ? { username: 'user1', passwordHash: argon2Hash } : null
    }
  })
  const unknown = await tokenRequest(app, { grant_type: 'password', username: 'nobody', password: 'password1' })
  for (let i = 0; i < 3; i++) {
    const res = await tokenRequest(app, { grant_type: 'password', username: 'legacy', password: 'password1' })
    // Not a 500: that would tell an attacker which accounts still carry a legacy hash.
    t.equal(res.statusCode, 400)
    t.same(res.json(), unknown.json(), 'the same answer as for an unknown user')
  }
  const errors = entries().filter((e) => e.level === 50)
  t.equal(errors.length, 1, 'logged once, not on every login')
  t.match(errors[0]?.msg, /npm install bcrypt/)
  t.match(errors[0], { err: { code: 'ERR_MODULE_NOT_FOUND' } })
  t.notOk(JSON.stringify(entries()).includes(PASSLIB_2B), 'the hash is not logged')

  // argon2 users are not affected.
  const argon = await tokenRequest(app, { grant_type: 'password', username: 'user1', password: 'password1' })
  t.equal(argon.statusCode, 200)
})
