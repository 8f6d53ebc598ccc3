import t, { type Test } from 'tap'
import http2 from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import { deflateSync, brotliCompressSync, gzipSync } from 'node:zlib'
import type { FastifyInstance, FastifyServerOptions, LightMyRequestResponse } from 'fastify'
import { buildApp, cheapHash, countArgon2Verifies, form, FORM, type LooseOptions } from './helper.js'

/*
 * The OAuth2 endpoints read a form as plain UTF-8 bytes (RFC 6749 Appendix B). A body the client
 * compressed (Content-Encoding) or declared in another charset would be read as something the
 * client did not send: it is refused before it is parsed, in the RFC 6749 §5.2 shape.
 */

const GOOD = Object.freeze({ grant_type: 'password', username: 'user1', password: 'password1' })
const RS = { authorization: 'Basic ' + Buffer.from('rs:rs-secret').toString('base64') }
const ENDPOINTS = ['/token', '/revoke', '/introspect'] as const
const COMPRESSED = /^The request body must not be compressed/
const NOT_UTF8 = /^The form must be encoded in UTF-8/

/** Asserts an RFC 6749 §5.2 error: the status, exactly `{ error, error_description }`, not cacheable. */
function assertOAuthError (t: Test, res: LightMyRequestResponse, status: number, code: string, description?: RegExp): void {
  t.equal(res.statusCode, status, `status ${status} for ${code}`)
  const body = res.json()
  t.equal(body.error, code)
  t.same(Object.keys(body).sort(), ['error', 'error_description'])
  t.match(body.error_description, /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/, 'RFC 6749 §5.2: error_description characters')
  t.notMatch(body.error_description, /["\\]/, 'no double quote or backslash')
  if (description !== undefined) t.match(body.error_description, description)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
}

/**
 * The token, revocation and introspection endpoints, with a client that may introspect. The host
 * records every body that reached a preValidation hook, which runs only after the body is parsed.
 */
async function serve (t: Test, plugin: LooseOptions = {}): Promise<{ app: FastifyInstance, parsed: unknown[] }> {
  const parsed: unknown[] = []
  const app = await buildApp(t, {
    plugin: {
      clients: [{ id: 'rs', secretHash: await cheapHash('rs-secret'), introspect: true }],
      publicClient: true,
      refreshTokens: true,
      rateLimit: false,
      ...plugin
    },
    before: (app) => app.addHook('preValidation', async (request) => { parsed.push(request.body) })
  })
  return { app, parsed }
}

/** The headers a request to `url` needs besides its body's: the introspecting client's credentials. */
function auth (url: string): Record<string, string> {
  return url === '/introspect' ? RS : {}
}

function post (app: FastifyInstance, url: string, headers: Record<string, string | string[]>, payload: string | Buffer): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url, headers: { ...auth(url), ...headers }, payload })
}

/** The form each endpoint would accept, so that only the encoding is wrong. */
function goodForm (url: string): string {
  return url === '/token' ? form(GOOD) : form({ token: 'some-token' })
}

t.test('a compressed body is refused on every endpoint, before it is parsed', async (t) => {
  const { app, parsed } = await serve(t)
  const verifies = countArgon2Verifies(t)
  const cases: Array<[string, string | string[], RegExp]> = [
    ['gzip', 'gzip', /\(Content-Encoding 'gzip' is not supported\)$/],
    ['deflate', 'deflate', /\(Content-Encoding 'deflate' is not supported\)$/],
    ['br', 'br', /\(Content-Encoding 'br' is not supported\)$/],
    ['x-gzip', 'x-gzip', /'x-gzip'/],
    ['uppercase', 'GZIP', /'GZIP'/],
    ['padded', '  gzip  ', /'gzip'/],
    ['a list ending in identity', 'gzip, identity', /'gzip'/],
    ['a list starting with identity', 'identity, gzip', /'gzip'/],
    ['repeated headers (Node joins them with ", ")', ['gzip', 'identity'], /'gzip'/],
    ['repeated identity then gzip', ['identity', 'br'], /'br'/],
    ['an unknown coding', 'zstd', /'zstd'/],
    ['an empty value', '', /only Content-Encoding identity is supported/],
    ['a blank value', '   ', /only Content-Encoding identity is supported/],
    ['an empty list element', 'identity,', /only Content-Encoding identity is supported/],
    ['identity with a parameter', 'identity;q=1', /only Content-Encoding identity is supported/]
  ]
  for (const url of ENDPOINTS) {
    for (const [name, encoding, description] of cases) {
      const res = await post(app, url, { ...FORM, 'content-encoding': encoding }, goodForm(url))
      assertOAuthError(t, res, 400, 'invalid_request', COMPRESSED)
      t.match(res.json().error_description, description, `${url}, ${name}`)
    }
  }
  t.same(parsed, [], 'no body was parsed')
  t.equal(verifies(), 0, 'no client secret was checked: the request stops before client authentication')
})

t.test('a really compressed body is refused, not parsed as form bytes', async (t) => {
  const { app, parsed } = await serve(t)
  const codings: Array<[string, (data: Buffer) => Buffer]> = [['gzip', gzipSync], ['deflate', deflateSync], ['br', brotliCompressSync]]
  for (const url of ENDPOINTS) {
    for (const [encoding, compress] of codings) {
      const res = await post(app, url, { ...FORM, 'content-encoding': encoding }, compress(Buffer.from(goodForm(url))))
      assertOAuthError(t, res, 400, 'invalid_request', new RegExp(`^The request body must not be compressed \\(Content-Encoding '${encoding}' is not supported\\)$`))
      t.notMatch(res.json().error_description, /grant_type|token' parameter/, 'not described as a missing parameter')
    }
  }
  t.same(parsed, [], 'no body was parsed')
})

t.test('identity, or no Content-Encoding at all, logs in as before', async (t) => {
  const { app, parsed } = await serve(t)
  for (const encoding of [undefined, 'identity', 'IDENTITY', ' Identity ', ['identity', 'identity']]) {
    const headers = encoding === undefined ? FORM : { ...FORM, 'content-encoding': encoding }
    const res = await post(app, '/token', headers, form(GOOD))
    t.equal(res.statusCode, 200, `Content-Encoding ${JSON.stringify(encoding)}`)
    t.equal(res.json().token_type, 'Bearer')
  }
  t.equal(parsed.length, 5)
  const wrong = await post(app, '/token', { ...FORM, 'content-encoding': 'identity' }, form({ ...GOOD, password: 'wrong' }))
  assertOAuthError(t, wrong, 400, 'invalid_grant')
})

t.test('identity, or no Content-Encoding, still reaches /revoke and /introspect', async (t) => {
  const { app } = await serve(t)
  const { access_token: token } = (await post(app, '/token', FORM, form(GOOD))).json()
  for (const headers of [FORM, { ...FORM, 'content-encoding': 'identity' }]) {
    const introspected = await post(app, '/introspect', headers, form({ token }))
    t.equal(introspected.statusCode, 200)
    t.equal(introspected.json().active, true)
    const revoked = await post(app, '/revoke', headers, form({ token: 'not-a-token' }))
    t.equal(revoked.statusCode, 200)
    t.equal(revoked.body, '{}')
  }
})

t.test('a form declared in UTF-8 or US-ASCII is read as before', async (t) => {
  const { app } = await serve(t)
  for (const contentType of [
    'application/x-www-form-urlencoded; charset=utf-8',
    'application/x-www-form-urlencoded; charset=UTF-8',
    'application/x-www-form-urlencoded;charset=UTF-8',
    'application/x-www-form-urlencoded; charset="UTF-8"',
    'application/x-www-form-urlencoded; charset="utf-8"',
    'application/x-www-form-urlencoded; charset=us-ascii',
    'application/x-www-form-urlencoded; charset=US-ASCII',
    'application/x-www-form-urlencoded; charset="us-ascii"',
    'APPLICATION/X-WWW-FORM-URLENCODED; CHARSET=UTF-8',
    'application/x-www-form-urlencoded; charset = utf-8 ',
    'application/x-www-form-urlencoded; foo=bar; charset=utf-8'
  ]) {
    const res = await post(app, '/token', { 'content-type': contentType }, form(GOOD))
    t.equal(res.statusCode, 200, contentType)
    t.equal(res.json().token_type, 'Bearer')
  }
})

t.test('a form declared in another charset is refused on every endpoint, before it is parsed', async (t) => {
  const { app, parsed } = await serve(t)
  const verifies = countArgon2Verifies(t)
  const cases: Array<[string, RegExp]> = [
    ['charset="latin1"', /\(charset 'latin1' is not supported\)$/],
    ['charset=latin1', /'latin1'/],
    ['charset=utf-16', /'utf-16'/],
    ['charset="UTF-16LE"', /'UTF-16LE'/],
    ['charset=windows-1252', /'windows-1252'/],
    ['charset=utf8', /'utf8'/],
    ['charset=', /only charset utf-8, us-ascii or iso-8859-1 is supported/],
    ['charset=""', /only charset utf-8, us-ascii or iso-8859-1 is supported/],
    ['charset="utf-8', /only charset utf-8, us-ascii or iso-8859-1 is supported/],
    ['charset=utf-8; charset=latin1', /'latin1'/],
    ['charset=latin1; charset=utf-8', /'latin1'/],
    ['CHARSET=Latin1', /'Latin1'/],
    ['charset="lat\\"in1"', /only charset utf-8, us-ascii or iso-8859-1 is supported/],
    ['charset=lat\\in1', /only charset utf-8, us-ascii or iso-8859-1 is supported/],
    ['charset=' + 'x'.repeat(21), /only charset utf-8, us-ascii or iso-8859-1 is supported/],
    // Read as a parameter of its own (a quoted ';' is not looked into): refused all the same.
    ['foo="a;charset=latin1"', /only charset utf-8, us-ascii or iso-8859-1 is supported/]
  ]
  for (const url of ENDPOINTS) {
    for (const [parameter, description] of cases) {
      const res = await post(app, url, { 'content-type': `application/x-www-form-urlencoded; ${parameter}` }, goodForm(url))
      assertOAuthError(t, res, 400, 'invalid_request', NOT_UTF8)
      t.match(res.json().error_description, description, `${url}, ${parameter}`)
    }
  }
  t.same(parsed, [], 'no body was parsed')
  t.equal(verifies(), 0, 'no client secret or password was checked')
})

t.test('a form in UTF-16 is refused, never decoded as UTF-8; an ASCII form labelled ISO-8859-1 (Apache HttpClient) logs in', async (t) => {
  const { app, parsed } = await serve(t)
  for (const label of ['iso-8859-1', 'ISO-8859-1', '"ISO-8859-1"']) {
    const ascii = await post(app, '/token', { 'content-type': `application/x-www-form-urlencoded; charset=${label}` }, form(GOOD))
    t.equal(ascii.statusCode, 200, label)
  }
  t.equal(parsed.length, 3)
  parsed.length = 0
  const utf16 = await post(app, '/token', { 'content-type': 'application/x-www-form-urlencoded; charset=utf-16le' }, Buffer.from(form(GOOD), 'utf16le'))
  assertOAuthError(t, utf16, 400, 'invalid_request', /'utf-16le'/)
  t.same(parsed, [])
})

t.test('hostile header values: never echoed unless plain, never a 500', async (t) => {
  const { app, parsed } = await serve(t)
  const encodings = [
    'x'.repeat(21),
    'g'.repeat(10_000),
    'gzip'.repeat(2_000) + ', identity',
    ', '.repeat(3_000),
    '"gzip"',
    'gz\\ip',
    'gzip"; x="\\',
    'a b',
    '%22gzip%5C'
  ]
  for (const encoding of encodings) {
    const res = await post(app, '/token', { ...FORM, 'content-encoding': encoding }, form(GOOD))
    assertOAuthError(t, res, 400, 'invalid_request', /^The request body must not be compressed \(only Content-Encoding identity is supported\)$/)
    t.ok(res.body.length < 200, 'a short answer whatever the header')
  }
  const charsets = [
    'charset=' + 'l'.repeat(10_000),
    'charset="' + 'l'.repeat(10_000),
    ';charset="'.repeat(1_500),
    'charset="lat in1"',
    'charset=\\"',
    'charset="\\\\"'
  ]
  for (const parameter of charsets) {
    const res = await post(app, '/token', { 'content-type': `application/x-www-form-urlencoded; ${parameter}` }, form(GOOD))
    assertOAuthError(t, res, 400, 'invalid_request', /^The form must be encoded in UTF-8 \(only charset utf-8, us-ascii or iso-8859-1 is supported\)$/)
    t.ok(res.body.length < 200, 'a short answer whatever the header')
  }
  t.same(parsed, [])
})

t.test('the per-IP limit counts a refused request before it is refused', async (t) => {
  const { app } = await serve(t, { rateLimit: { max: 2, timeWindow: 60_000 } })
  const gzip = await post(app, '/token', { ...FORM, 'content-encoding': 'gzip' }, gzipSync(form(GOOD)))
  assertOAuthError(t, gzip, 400, 'invalid_request', COMPRESSED)
  const latin1 = await post(app, '/token', { 'content-type': 'application/x-www-form-urlencoded; charset=latin1' }, form(GOOD))
  assertOAuthError(t, latin1, 400, 'invalid_request', NOT_UTF8)
  // The limit (2) is spent: the next request, good or bad, is throttled before its body is looked at.
  assertOAuthError(t, await post(app, '/token', FORM, form(GOOD)), 429, 'too_many_requests')
  assertOAuthError(t, await post(app, '/token', { ...FORM, 'content-encoding': 'gzip' }, form(GOOD)), 429, 'too_many_requests')
})

t.test('requests without a body, or that are not forms, are answered as before', async (t) => {
  const { app } = await serve(t)
  // No body: nothing is encoded, so the headers do not matter; the form is missing as before.
  for (const headers of [
    { 'content-encoding': 'gzip' },
    { ...FORM, 'content-encoding': 'gzip', 'content-length': '0' },
    { 'content-type': 'application/x-www-form-urlencoded; charset=latin1', 'content-length': '0' }
  ]) {
    const res = await app.inject({ method: 'POST', url: '/token', headers })
    assertOAuthError(t, res, 400, 'invalid_request')
    t.notMatch(res.json().error_description, /compressed|UTF-8/)
  }
  // A bodyless method keeps its 405, whatever it declares.
  const get = await app.inject({ method: 'GET', url: '/token', headers: { 'content-encoding': 'gzip', 'content-type': 'application/x-www-form-urlencoded; charset=latin1' } })
  assertOAuthError(t, get, 405, 'invalid_request')
  t.equal(get.headers.allow, 'POST')
  // Not a form: the 415 answer says what to send, whatever charset the other type names.
  const json = await post(app, '/token', { 'content-type': 'application/json; charset=latin1' }, JSON.stringify(GOOD))
  assertOAuthError(t, json, 400, 'invalid_request', /must be application\/x-www-form-urlencoded/)
  // The host's other routes are untouched.
  t.equal((await app.inject({ method: 'GET', url: '/public', headers: { 'content-encoding': 'gzip' } })).statusCode, 200)
})

t.test('over HTTP/2, a body framed without Content-Length is refused all the same', async (t) => {
  const parsed: unknown[] = []
  const app = await buildApp(t, {
    server: { http2: true } as FastifyServerOptions,
    plugin: { rateLimit: false },
    before: (app) => app.addHook('preValidation', async (request) => { parsed.push(request.body) })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const session = http2.connect(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  session.on('error', () => {})
  t.teardown(() => { session.close() })
  /** A POST /token whose DATA frames alone carry the body: no Content-Length is sent. */
  const send = (headers: Record<string, string>, body: Buffer | string): Promise<{ status: number, body: Record<string, string> }> =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/token', ...headers })
      let status = 0
      const chunks: Buffer[] = []
      stream.on('response', (answer) => { status = answer[':status'] as number })
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => { resolve({ status, body: JSON.parse(Buffer.concat(chunks).toString()) }) })
      stream.on('error', reject)
      stream.end(body)
    })
  const gzip = await send({ ...FORM, 'content-encoding': 'gzip' }, gzipSync(form(GOOD)))
  t.equal(gzip.status, 400)
  t.same(gzip.body, { error: 'invalid_request', error_description: "The request body must not be compressed (Content-Encoding 'gzip' is not supported)" })
  const latin1 = await send({ 'content-type': 'application/x-www-form-urlencoded; charset=latin1' }, form(GOOD))
  t.equal(latin1.status, 400)
  t.same(latin1.body, { error: 'invalid_request', error_description: "The form must be encoded in UTF-8 (charset 'latin1' is not supported)" })
  t.same(parsed, [], 'neither body was parsed')
  const plain = await send({ ...FORM, 'content-encoding': 'identity' }, form(GOOD))
  t.equal(plain.status, 200)
  t.equal(plain.body.token_type, 'Bearer')
})

/**
 * One POST over a raw socket to the app listening on `port` (header lines and body as given, so
 * that Node's own parsing is what the server meets); the status and the JSON answer.
 */
function rawPost (port: number, url: string, lines: string[], body: Buffer): Promise<{ status: number, body: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const [head, ...rest] = Buffer.concat(chunks).toString('latin1').split('\r\n\r\n')
      const text = rest.join('\r\n\r\n')
      // The answer may itself be chunked: its JSON is between the first { and the last }.
      resolve({ status: Number(head!.split(' ')[1]), body: JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1)) })
    })
    // Not half-closed: the answer comes after the hash, on a socket the server closes (Connection: close).
    const auths = Object.entries(auth(url)).map(([name, value]) => `${name}: ${value}`)
    socket.write(Buffer.concat([
      Buffer.from(`POST ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${[...lines, ...auths].join('\r\n')}\r\n\r\n`, 'latin1'),
      body
    ]))
  })
}

t.test('a transfer coding other than chunked is refused: Node hands its bytes on as they came', async (t) => {
  const { app, parsed } = await serve(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  /** One POST /token, its body in one chunk. */
  const send = (transferEncoding: string, body: Buffer) => rawPost(port, '/token', [`Content-Type: ${FORM['content-type']}`, `Transfer-Encoding: ${transferEncoding}`],
    Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1'), body, Buffer.from('\r\n0\r\n\r\n', 'latin1')]))
  const gzip = await send('gzip, chunked', gzipSync(form(GOOD)))
  t.equal(gzip.status, 400)
  t.same(gzip.body, { error: 'invalid_request', error_description: "The request body must not be compressed (Transfer-Encoding 'gzip' is not supported)" })
  t.same(parsed, [], 'not parsed')
  const chunked = await send('chunked', Buffer.from(form(GOOD)))
  t.equal(chunked.status, 200, 'a chunked form logs in as before')
  t.equal(chunked.body.token_type, 'Bearer')
})

t.test('a request with two Content-Type fields is refused: Node reads the first, a proxy may read the last', async (t) => {
  const { app, parsed } = await serve(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const send = (url: string, lines: string[], body: string) => rawPost(port, url, [...lines, `Content-Length: ${Buffer.byteLength(body)}`], Buffer.from(body))
  for (const url of ENDPOINTS) {
    for (const lines of [[`Content-Type: ${FORM['content-type']}`, 'Content-Type: application/json'], ['content-type: application/json', `CONTENT-TYPE: ${FORM['content-type']}`]]) {
      const res = await send(url, lines, goodForm(url))
      t.equal(res.status, 400, `${url} ${lines.join(' / ')}`)
      t.same(res.body, { error: 'invalid_request', error_description: 'The request must have one Content-Type header' })
    }
  }
  t.same(parsed, [], 'not parsed')
  const one = await send('/token', [`Content-Type: ${FORM['content-type']}`], form(GOOD))
  t.equal(one.status, 200, 'one Content-Type logs in as before')
})
