/*
 * A single-page app on the plugin's browser sessions (docs/browser-apps.md). The access token
 * lives in this module's memory only; the refresh token lives in an httpOnly cookie that no
 * script, this one included, can read. Every /token and /revoke request sends
 * `x-token-delivery: cookie`: it asks for the cookie, and proves the request comes from this app.
 */
const BROWSER = { 'x-token-delivery': 'cookie' }
// setTimeout's longest delay (about 24.8 days): browsers run a longer one at once.
const MAX_DELAY = 2 ** 31 - 1

let access // { token, expiresIn }
let timer
let refreshes = 0
let refreshing // the refresh under way, which every caller waits for
let ending // a logout under way: no refresh starts until it is over

const $ = (id) => document.getElementById(id)

/** Runs `task` after `ms` milliseconds (at least a second), in place of whatever was scheduled. */
function schedule (task, ms) {
  clearTimeout(timer)
  timer = setTimeout(task, Math.min(MAX_DELAY, Math.max(1000, ms)))
}

/** POSTs a form to /token or /revoke as this app; resolves the JSON answer, rejects with the OAuth2 error and Retry-After. */
async function post (path, fields) {
  const res = await fetch(path, { method: 'POST', headers: BROWSER, credentials: 'same-origin', body: new URLSearchParams(fields) })
  const body = await res.json().catch(() => ({})) // a proxy's error page is not JSON
  if (res.ok) return body
  const message = body.error_description ?? body.error ?? `${path} answered ${res.status}`
  throw Object.assign(new Error(message), { error: body.error, retryAfter: Number(res.headers.get('retry-after')) })
}

/** Seconds to wait before trying again after a failed POST: its Retry-After, else 10 (no network); at most 5 minutes. */
const waitAfter = (error) => Math.min(300, error.retryAfter || 10)

/** Keeps a token answer's access token, and schedules the silent refresh before it expires. */
function keep (body) {
  access = { token: body.access_token, expiresIn: body.expires_in }
  const lifetime = body.expires_in * 1000
  // A third of its lifetime early (at most a minute): a slow network still refreshes in time.
  schedule(refresh, lifetime - Math.min(60_000, lifetime / 3))
}

/**
 * A silent refresh (no token in the body: the cookie carries it); true when it got a new access
 * token. Each refresh spends the token in the cookie, so one runs at a time: callers in this page
 * share it, and other tabs wait for it (navigator.locks) and then send the cookie it left.
 */
function refresh () {
  if (ending) return Promise.resolve(false)
  refreshing ??= (navigator.locks ? navigator.locks.request('refresh', renew) : renew()).finally(() => { refreshing = undefined })
  return refreshing
}

async function renew () {
  try {
    keep(await post('/token', { grant_type: 'refresh_token' }))
  } catch (error) {
    // The session is over only when the server says so: no cookie, or one it no longer takes.
    if (error.error === 'invalid_grant' || error.error === 'invalid_request') {
      loggedOut()
    } else {
      // 429, 503, no network: the session may well be good. Keep it, and try again later.
      const wait = waitAfter(error)
      $('status').textContent = `Session not refreshed (${error.message}): trying again in ${wait} s.`
      schedule(resume, wait * 1000)
    }
    return false
  }
  refreshes += 1
  $('refreshes').textContent = String(refreshes)
  $('expires-in').textContent = String(access.expiresIn)
  return true
}

/** GETs a protected route with the access token: the status and the JSON answer; rejects with no network. */
async function call (path) {
  const get = () => fetch(path, { headers: { authorization: `Bearer ${access.token}` } })
  let res = await get()
  // Expired while the computer slept, or revoked: one refresh, one retry.
  if (res.status === 401 && await refresh()) res = await get()
  return { status: res.status, body: await res.json().catch(() => ({})) } // a proxy's error page is not JSON
}

async function showSession () {
  let me
  try {
    me = await call('/me')
  } catch (error) {
    me = { failure: error.message }
  }
  if (me.status !== 200) {
    // No network, a 503, a proxy's error page: the session in the cookie is not the problem. Ask
    // again later; the refresh timer is set again by the next refresh (a 401 brings one).
    $('status').textContent = `Session not shown (/me: ${me.failure ?? me.status}): trying again in 10 s.`
    schedule(showSession, 10_000)
    return
  }
  $('user').textContent = me.body.sub
  $('scope').textContent = me.body.scope
  $('expires-in').textContent = String(access.expiresIn)
  $('status').textContent = 'Logged in.'
  $('login').hidden = true
  $('session').hidden = false
}

/** On load, and after a refresh that failed for now: the session the cookie holds, if any. */
async function resume () {
  if (await refresh()) await showSession()
}

function loggedOut () {
  access = undefined
  clearTimeout(timer)
  $('status').textContent = 'Logged out.'
  $('session').hidden = true
  $('result').textContent = ''
  $('login').hidden = false
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault()
  const fields = new FormData(event.target)
  $('login-error').textContent = ''
  try {
    keep(await post('/token', { grant_type: 'password', username: fields.get('username'), password: fields.get('password') }))
    event.target.reset()
    await showSession()
  } catch (error) {
    $('login-error').textContent = error.message
  }
})

for (const [button, path] of [['call-protected', '/protected'], ['call-admin', '/admin']]) {
  $(button).addEventListener('click', async () => {
    try {
      const { status, body } = await call(path)
      $('result').textContent = `${path} → ${status}\n${JSON.stringify(body, null, 2)}`
    } catch (error) {
      $('result').textContent = `${path} → ${error.message}`
    }
  })
}

$('logout').addEventListener('click', async () => {
  // Ending the session in the cookie is the logout: the server also denies the access tokens it
  // issued when its access tokens are revocable, and this page forgets its own. A refresh under
  // way is waited for: it spends the token in the cookie and sets the next one, which is the one
  // to end; and its answer must not bring the session back after the logout.
  ending = true
  try {
    await refreshing
    if (access === undefined) return // that refresh found the session over
    await post('/revoke', { token_type_hint: 'refresh_token' })
  } catch (error) {
    // Nothing ended (429, 503, no network): a reload would still find the session, and so does
    // this page, after the wait (a refresh timer that came due meanwhile did nothing).
    $('status').textContent = `Not logged out (${error.message}): try again in ${waitAfter(error)} s.`
    schedule(resume, waitAfter(error) * 1000)
    return
  } finally {
    ending = false
  }
  loggedOut()
})

// On load: a silent refresh finds the session the cookie holds, across reloads.
resume()
