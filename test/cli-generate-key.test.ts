import t from 'tap'
import { execFile } from 'node:child_process'
import { createPrivateKey, createPublicKey, type JsonWebKey } from 'node:crypto'
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify } from 'jose'
import { runCli } from '../lib/cli/cli.js'
import { buildApp, login } from './helper.js'

/*
 * `fastify-token-auth generate-key --alg …`: a fresh key, as a private JWK with kid and alg that
 * the `keys` option and JWT_KEYS_FILE take as they are, and as a PEM pair.
 */

async function run (args: string[]) {
  let out = ''
  let err = ''
  const code = await runCli(args, {
    stdin: Readable.from([]),
    stdout: { write: (text: string) => { out += text } },
    stderr: { write: (text: string) => { err += text } }
  })
  return { code, out, err }
}

const PEM_PAIR = /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/

t.test('prints a private JWK with a fresh kid and its alg, then the PEM pair of the same key', async (t) => {
  for (const [alg, kty] of [['ES256', 'EC'], ['RS256', 'RSA'], ['PS256', 'RSA'], ['EdDSA', 'OKP']] as const) {
    const { code, out, err } = await run(['generate-key', '--alg', alg])
    t.equal(code, 0, alg)
    t.equal(err, '')
    const [json, pem] = out.split('\n\n')
    const jwk = JSON.parse(json as string) as JsonWebKey
    t.match(jwk, { kty, alg, use: 'sig', kid: /^[A-Za-z0-9_-]{43}$/, d: String }, `${alg} JWK`)
    // The kid is the key's RFC 7638 thumbprint, as jose computes it.
    t.equal(jwk.kid, await calculateJwkThumbprint(jwk as never, 'sha256'), 'kid = RFC 7638 thumbprint')
    t.match(pem, PEM_PAIR)
    const fromPem = createPrivateKey(pem as string)
    t.same(fromPem.export({ format: 'jwk' }), createPrivateKey({ key: jwk, format: 'jwk' }).export({ format: 'jwk' }), 'the PEM is the same private key')
    const publicPem = (pem as string).slice((pem as string).indexOf('-----BEGIN PUBLIC KEY-----'))
    t.same(createPublicKey(publicPem).export({ format: 'jwk' }), createPublicKey(fromPem).export({ format: 'jwk' }), 'and its public half')
  }
  const a = JSON.parse((await run(['generate-key', '--alg=ES256', '--format=jwk'])).out)
  const b = JSON.parse((await run(['generate-key', '--alg=ES256', '--format=jwk'])).out)
  t.not(a.kid, b.kid, 'every run makes a new key with a new kid')
  t.not(a.d, b.d)
})

t.test('--format jwk, jwks and pem print one form each', async (t) => {
  const jwk = await run(['generate-key', '--alg', 'EdDSA', '--format', 'jwk'])
  t.match(JSON.parse(jwk.out), { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' })
  const jwks = await run(['generate-key', '--format', 'jwks', '--alg', 'ES256'])
  const set = JSON.parse(jwks.out)
  t.equal(set.keys.length, 1)
  t.match(set.keys[0], { kty: 'EC', alg: 'ES256', kid: String, d: String })
  const pem = await run(['generate-key', '--alg', 'RS256', '--format', 'pem'])
  t.match(pem.out, PEM_PAIR)
  t.equal(createPrivateKey(pem.out).asymmetricKeyDetails?.modulusLength, 2048)
})

t.test('the printed JWK goes straight into the keys option, and jose verifies what it signs', async (t) => {
  for (const alg of ['ES256', 'RS256', 'EdDSA']) {
    const jwk = JSON.parse((await run(['generate-key', '--alg', alg, '--format', 'jwk'])).out)
    const app = await buildApp(t, { plugin: { secret: undefined, keys: [{ key: jwk }] } })
    const token = await login(app)
    const jwks = createLocalJWKSet((await app.inject('/.well-known/jwks.json')).json())
    const { protectedHeader } = await jwtVerify(token, jwks, { algorithms: [alg] })
    t.same(protectedHeader, { alg, typ: 'at+jwt', kid: jwk.kid }, alg)
  }
})

t.test('a missing or unknown --alg or --format exits 1 with usage on stderr', async (t) => {
  for (const args of [['generate-key'], ['generate-key', '--alg'], ['generate-key', '--alg', 'HS256'], ['generate-key', '--alg', 'none'],
    ['generate-key', '--alg', 'toString'], ['generate-key', '--alg', 'ES256', '--format', 'der'], ['generate-key', '--alg=']]) {
    const { code, out, err } = await run(args)
    t.equal(code, 1, JSON.stringify(args))
    t.equal(out, '')
    t.match(err, /generate-key --alg ES256\|RS256\|PS256\|EdDSA/)
  }
  const help = await run(['--help'])
  t.match(help.out, /generate-key --alg/)
})

/** A fresh directory, removed at teardown. */
function scratch (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'fja-generate-key-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const mode = (path: string): number => statSync(path).mode & 0o777

t.test('--out FILE writes the key readable by its owner only (0600), and says so', { skip: process.platform === 'win32' ? 'no POSIX modes' : false }, async (t) => {
  const dir = scratch(t)
  const file = join(dir, 'keys.json')
  const { code, out, err } = await run(['generate-key', '--alg', 'ES256', '--out', file])
  t.equal(code, 0)
  t.equal(err, '')
  t.equal(mode(file), 0o600, 'mode 0600')
  const set = JSON.parse(readFileSync(file, 'utf8'))
  t.match(set, { keys: [{ kty: 'EC', alg: 'ES256', kid: String, d: String }] }, 'a JWK Set by default, as JWT_KEYS_FILE takes it')
  t.match(out, new RegExp(`Wrote .*ES256.*${set.keys[0].kid}.*${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*0600`), 'the output says where, and the mode')
  t.notOk(out.includes(set.keys[0].d), 'the private key itself is not printed')

  const pem = join(dir, 'key.pem')
  t.equal((await run(['generate-key', '--alg', 'EdDSA', '--format', 'pem', `--out=${pem}`])).code, 0)
  t.match(readFileSync(pem, 'utf8'), PEM_PAIR, '--format chooses the form written')
  t.equal(mode(pem), 0o600)
})

t.test('--out refuses to overwrite an existing file unless --force, and says why and how', { skip: process.platform === 'win32' ? 'no POSIX modes' : false }, async (t) => {
  const dir = scratch(t)
  const file = join(dir, 'keys.json')
  writeFileSync(file, 'the keys in use', { mode: 0o644 })
  const refused = await run(['generate-key', '--alg', 'ES256', '--out', file])
  t.equal(refused.code, 1, 'a non-zero exit code')
  t.equal(refused.out, '')
  t.match(refused.err, /already exists.*not overwritten.*--force/s)
  t.equal(readFileSync(file, 'utf8'), 'the keys in use', 'untouched')

  // A link standing at the path is refused too, and never followed.
  const target = join(dir, 'elsewhere')
  writeFileSync(target, 'not a key file')
  symlinkSync(target, join(dir, 'link.json'))
  t.equal((await run(['generate-key', '--alg', 'ES256', '--out', join(dir, 'link.json')])).code, 1)
  t.equal(readFileSync(target, 'utf8'), 'not a key file')

  const forced = await run(['generate-key', '--alg', 'ES256', '--out', file, '--force'])
  t.equal(forced.code, 0)
  t.match(JSON.parse(readFileSync(file, 'utf8')), { keys: [{ alg: 'ES256' }] }, 'replaced with --force')
  t.equal(mode(file), 0o600, 'and the old file\'s 0644 did not carry over')
  t.equal((await run(['generate-key', '--alg', 'ES256', '--out', join(dir, 'link.json'), '--force'])).code, 0)
  t.notOk(lstatSync(join(dir, 'link.json')).isSymbolicLink(), 'with --force a link is replaced by the file, not followed')
  t.equal(readFileSync(target, 'utf8'), 'not a key file')
})

t.test('--out into a directory that does not exist, or without a file name, exits 1', async (t) => {
  const dir = scratch(t)
  const missing = await run(['generate-key', '--alg', 'ES256', '--out', join(dir, 'no', 'such', 'keys.json')])
  t.equal(missing.code, 1)
  t.match(missing.err, /Cannot write .*keys\.json/)
  const forced = await run(['generate-key', '--alg', 'ES256', '--out', join(dir, 'no', 'keys.json'), '--force'])
  t.equal(forced.code, 1)
  const empty = await run(['generate-key', '--alg', 'ES256', '--out='])
  t.equal(empty.code, 1)
  t.match(empty.err, /--out FILE/)
  // The next flag is no file name.
  t.teardown(() => rmSync('--force', { force: true }))
  const flagged = await run(['generate-key', '--alg', 'ES256', '--out', '--force'])
  t.equal(flagged.code, 1)
  t.match(flagged.err, /--out FILE/)
  t.notOk(existsSync('--force'), 'no file named --force')
  t.equal((await run(['generate-key', '--alg', '--format', 'jwk'])).code, 2, 'nor is it an algorithm: "jwk" is then a stray argument')
})

const BIN = fileURLToPath(new URL('../dist/esm/cli/bin.js', import.meta.url))

t.test('the built binary', { skip: existsSync(BIN) ? false : 'dist/esm/cli/bin.js is missing: run `npm run build` first' }, async (t) => {
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'generate-key', '--alg', 'ES256', '--format', 'jwks'])
  t.equal(stderr, '')
  t.match(JSON.parse(stdout), { keys: [{ kty: 'EC', alg: 'ES256' }] })
})
