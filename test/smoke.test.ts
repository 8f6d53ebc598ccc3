import t from 'tap'
import { buildApp, login, bearer } from './helper.js'

t.test('login then call a protected route', async (t) => {
  const app = await buildApp(t)
  const token = await login(app)
  const res = await app.inject({ url: '/protected', headers: bearer(token) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user1', scope: ['profile'] })
})
