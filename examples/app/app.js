/*
 * A single-page app on the plugin's browser sessions (docs/browser-apps.md). The access token
 * lives in this module's memory only; the refresh token lives in an httpOnly cookie that no
 * script, this one included, can read. Every /token and /revoke request sends
 * `x-token-delivery: cookie`: it asks for the cookie, and proves the request comes from this app.
 */
const BROWSER = { 'x-token-delivery': 'cookie' }

let access // { token, expiresIn }
let timer
let refreshes = 0

const $ = (id) => document.getElementById(id)

/** POSTs a form to /token or /revoke as this app; resolves the JSON answer, rejects with the OAuth2 error. */
async function post (path, fields) {
  const res = await fetch(path, { method: 'POST', headers: BROWSER, credentials: 'same-origin', body: new URLSearchParams(fields) })
  const body = await res.json()
  if (!res.ok) throw Object.assign(new Error(body.error_description ?? body.error), { status: res.status, error: body.error })
  return body
}

/** Keeps a token answer's access token, and schedules the silent refresh before it expires. */
function keep (body) {
  access = { token: body.access_token, expiresIn: body.expires_in }
  clearTimeout(timer)
  const lifetime = body.expires_in * 1000
  // A third of its lifetime early (at most a minute): a slow network still refreshes in time.
  timer = setTimeout(() => { refresh().catch(loggedOut) }, Math.max(1000, lifetime - Math.min(60_000, lifetime / 3)))
}

/** A refresh: no token in the body, the cookie carries it. */
async function refresh () {
  keep(await post('/token', { grant_type: 'refresh_token' }))
  refreshes += 1
  $('refreshes').textContent = String(refreshes)
  $('expires-in').textContent = String(access.expiresIn)
}

/** GETs a protected route with the access token: the status and the JSON answer. */
async function call (path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${access.token}` } })
  return { status: res.status, body: await res.json() }
}

async function showSession () {
  const me = await call('/me')
  if (me.status !== 200) throw new Error(`/me answered ${me.status}`)
  $('user').textContent = me.body.sub
  $('scope').textContent = me.body.scope
  $('expires-in').textContent = String(access.expiresIn)
  $('status').textContent = 'Logged in.'
  $('login').hidden = true
  $('session').hidden = false
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
    const { status, body } = await call(path)
    $('result').textContent = `${path} → ${status}\n${JSON.stringify(body, null, 2)}`
  })
}

$('logout').addEventListener('click', async () => {
  try {
    // The access token first (it would otherwise live out its lifetime), then the session in the cookie.
    if (access !== undefined) await post('/revoke', { token: access.token })
    await post('/revoke', { token_type_hint: 'refresh_token' })
  } finally {
    loggedOut()
  }
})

// On load: a silent refresh finds the session the cookie holds, across reloads.
refresh().then(showSession).catch(loggedOut)
