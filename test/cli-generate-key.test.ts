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

t.test('every usage error of generate-key exits 2 with why and the whole usage on stderr, and makes no key', async (t) => {
  const dir = scratch(t)
  const [a, b] = [join(dir, 'a.json'), join(dir, 'b.json')]
  const cases: Array<[args: string[], why: RegExp]> = [
    [['generate-key'], /generate-key needs --alg/],
    [['generate-key', '--alg'], /option --alg needs a value/],
    [['generate-key', '--alg='], /option --alg needs a value/],
    [['generate-key', '--alg', 'HS256'], /unsupported --alg "HS256".*generate-secret/],
    [['generate-key', '--alg', 'none'], /unsupported --alg "none": ES256, RS256, PS256 or EdDSA\n/],
    [['generate-key', '--alg', 'toString'], /unsupported --alg "toString"/],
    [['generate-key', '--alg=ES256=x'], /unsupported --alg "ES256=x"/],
    [['generate-key', '--alg', 'ES256', '--format', 'der'], /unknown --format "der": jwk, jwks or pem/],
    [['generate-key', '--alg', 'ES256', '--format=xml'], /unknown --format "xml"/],
    [['generate-key', '--alg', 'ES256', '--out='], /option --out needs a value/],
    [['generate-key', '--alg', 'ES256', '--out'], /option --out needs a value/],
    // Two values: which one was meant is a guess.
    [['generate-key', '--alg', 'ES256', '--alg', 'RS256'], /option --alg given more than once/],
    [['generate-key', '--alg=ES256', '--format', 'jwk', '--format=pem'], /option --format given more than once/],
    [['generate-key', '--alg', 'ES256', '--out', a, `--out=${b}`], /option --out given more than once/],
    [['generate-key', '--alg', 'ES256', '--out', a, '--force', '--force'], /option --force given more than once/],
    [['generate-key', '--alg', 'ES256', '--out', a, '--force=yes'], /option --force takes no value/],
    // Nothing to replace: the key goes to stdout.
    [['generate-key', '--alg', 'ES256', '--force'], /--force replaces the file named by --out FILE/]
  ]
  for (const [args, why] of cases) {
    const { code, out, err } = await run(args)
    t.equal(code, 2, `${JSON.stringify(args)} exits 2`)
    t.equal(out, '', 'no key on stdout')
    t.match(err, why)
    t.match(err, /\n\nUsage: fastify-token-auth <command>[\s\S]*generate-key --alg ES256\|RS256\|PS256\|EdDSA/, 'then the whole usage')
  }
  t.notOk(existsSync(a) || existsSync(b), 'no file written')
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

t.test('--out into a directory that does not exist exits 1; --out without a file name exits 2', async (t) => {
  const dir = scratch(t)
  const missing = await run(['generate-key', '--alg', 'ES256', '--out', join(dir, 'no', 'such', 'keys.json')])
  t.equal(missing.code, 1)
  t.match(missing.err, /Cannot write .*keys\.json/)
  const forced = await run(['generate-key', '--alg', 'ES256', '--out', join(dir, 'no', 'keys.json'), '--force'])
  t.equal(forced.code, 1)
  const empty = await run(['generate-key', '--alg', 'ES256', '--out='])
  t.equal(empty.code, 2, 'a usage error')
  t.match(empty.err, /option --out needs a value/)
  // The next flag is no file name.
  t.teardown(() => rmSync('--force', { force: true }))
  const flagged = await run(['generate-key', '--alg', 'ES256', '--out', '--force'])
  t.equal(flagged.code, 2)
  t.match(flagged.err, /option --out needs a value/)
  t.notOk(existsSync('--force'), 'no file named --force')
  const noAlg = await run(['generate-key', '--alg', '--format', 'jwk'])
  t.equal(noAlg.code, 2)
  t.match(noAlg.err, /option --alg needs a value/, 'nor is it an algorithm')
})

const BIN = fileURLToPath(new URL('../dist/esm/cli/bin.js', import.meta.url))

t.test('the built binary', { skip: existsSync(BIN) ? false : 'dist/esm/cli/bin.js is missing: run `npm run build` first' }, async (t) => {
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'generate-key', '--alg', 'ES256', '--format', 'jwks'])
  t.equal(stderr, '')
  t.match(JSON.parse(stdout), { keys: [{ kty: 'EC', alg: 'ES256' }] })
})
