import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { AuthEvent } from '../lib/index.js'
import { buildApp, cheapHash, tokenRequest } from './helper.js'

/*
 * Client authentication as an attacker sees it: regressions found in review of the `clients`
 * option, the client credentials grant, revocation and introspection.
 */

const GOOD = Object.freeze({ grant_type: 'password', username: 'user1', password: 'password1' })

async function serve (t: Test, events: AuthEvent[] = []): Promise<FastifyInstance> {
  return buildApp(t, {
    plugin: {
      rateLimit: false,
      refreshTokens: true,
      revocableAccessTokens: true,
      publicClient: true,
      clients: [{ id: 'web', secretHash: await cheapHash('web-secret') }, { id: 'mobile' }],
      onAuthEvent: (e) => events.push(e)
    }
  })
}

function assertInvalidClient (t: Test, res: LightMyRequestResponse): void {
  t.equal(res.statusCode, 401)
  t.equal(res.json().error, 'invalid_client')
  t.match(res.headers['www-authenticate'], /^Basic realm="api"/)
  t.equal(res.headers['cache-control'], 'no-store')
}

t.test('publicClient: a client_secret without a client_id is refused, not taken for the default public client', async (t) => {
  const events: AuthEvent[] = []
  const app = await serve(t, events)
  // RFC 6749 §2.3.1: client_secret comes with the client_id it belongs to. A secret on its own
  // is credentials that name no client, never "no credentials".
  assertInvalidClient(t, await tokenRequest(app, { ...GOOD, client_secret: 'web-secret' }))
  t.match(events, [{ type: 'client.failure' }])
  const session = (await tokenRequest(app, GOOD)).json() as { access_token: string, refresh_token: string }
  assertInvalidClient(t, await tokenRequest(app, { token: session.refresh_token, client_secret: 'anything' }, {}, '/revoke'))
  t.equal((await tokenRequest(app, { grant_type: 'refresh_token', refresh_token: session.refresh_token })).statusCode, 200, 'the session was not ended')
  // Without the secret, the default public client works as before.
  t.equal((await tokenRequest(app, GOOD)).statusCode, 200)
  t.equal((await tokenRequest(app, { ...GOOD, client_id: 'public' })).statusCode, 200)
})
