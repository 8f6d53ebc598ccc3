import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { hashPassword } from '../password/hasher.js'
import { jwkThumbprint } from '../options/keys.js'

/** The streams the CLI talks to; the real process's in `bin.ts`, fakes in tests. */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean, setRawMode?: (mode: boolean) => unknown }
  stdout: { write: (text: string) => unknown }
  stderr: { write: (text: string) => unknown }
}

// Read through the package's own name (self-reference through `exports`), the same from lib/
// in the repository and from dist/ once installed. `name` is also the command's name (`bin`).
const { name: COMMAND, version: VERSION } = createRequire(import.meta.url)('fastify-token-auth/package.json') as { name: string, version: string }

const USAGE = `Usage: ${COMMAND} <command> [options]

Commands:
  hash-password     read a password from standard input (hidden when typed at a terminal)
                    and print its argon2id hash, for a user record's passwordHash
  generate-secret   print a random 256-bit secret for the "secret" option (base64url)
  generate-key --alg ES256|RS256|PS256|EdDSA [--format jwk|jwks|pem] [--out FILE [--force]]
                    print a new private key with a fresh kid: as a JWK (for a JWK Set such
                    as JWT_KEYS_FILE's "keys") and as a PEM pair; --format prints one form:
                    jwk, jwks (a whole JWK Set) or pem. --out writes it to FILE instead (a JWK
                    Set unless --format says otherwise), readable by its owner only (mode
                    0600); an existing FILE is replaced only with --force

Options:
  -h, --help        print this help
  -v, --version     print the version

Exit status: 0 done, 1 failed, 2 wrong usage (this help is then printed on standard error).
`

/** The exit status of a command line the CLI does not understand (as getopt-based tools do). */
const USAGE_ERROR = 2

/** The options each command takes, each with a value (`--name value` or `--name=value`). */
const COMMAND_OPTIONS: Record<string, readonly string[]> = {
  'hash-password': [],
  'generate-secret': [],
  'generate-key': ['--alg', '--format', '--out']
}

/** The options each command takes that have no value (switches). */
const COMMAND_SWITCHES: Record<string, readonly string[]> = {
  'generate-key': ['--force']
}

/** What is wrong with a command's arguments, or undefined when every one is known. */
function unknownArgument (command: string, args: readonly string[]): string | undefined {
  const known = COMMAND_OPTIONS[command] as readonly string[]
  const switches = COMMAND_SWITCHES[command] ?? []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (switches.includes(arg)) continue
    const name = arg.split('=', 1)[0] as string
    if (!known.includes(name)) return arg.startsWith('-') ? `unknown option "${name}" for ${command}` : `unexpected argument "${arg}"`
    if (name === arg) i++
  }
  return undefined
}

/** Reads a password typed at a terminal, without echoing it. */
async function readHidden (io: CliIo): Promise<string> {
  const { stdin } = io
  io.stderr.write('Password: ')
  stdin.setRawMode?.(true)
  stdin.resume()
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = ''
      const onData = (chunk: Buffer | string): void => {
        for (const char of chunk.toString('utf8')) {
          if (char === '\r' || char === '\n' || char === '\u0004') {
            stdin.off('data', onData)
            resolve(typed)
            return
          }
          if (char === '\u0003') {
            stdin.off('data', onData)
            reject(new Error('cancelled'))
            return
          }
          // Backspace and delete take back the last character.
          typed = char === '\u007f' || char === '\b' ? [...typed].slice(0, -1).join('') : typed + char
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode?.(false)
    stdin.pause()
    io.stderr.write('\n')
  }
}

/** Reads all of piped standard input; one trailing newline is not part of the password. */
async function readPiped (io: CliIo): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk as Buffer))
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
}

// Key generation parameters for each algorithm (RFC 7518 §3.3: RSA keys of at least 2048 bits).
const KEY_PAIRS = {
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  PS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  EdDSA: () => generateKeyPairSync('ed25519')
}
const FORMATS = ['jwk', 'jwks', 'pem']

/** Reads `--name value` or `--name=value`. */
function flag (args: readonly string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(name + '='))
  if (i === -1) return undefined
  const arg = args[i] as string
  // A flag's value is never the next flag (`--out --force` names no file called "--force").
  const next = args[i + 1]
  return arg === name ? (next === undefined || next.startsWith('--') ? '' : next) : arg.slice(name.length + 1)
}

/**
 * Writes a private key to `path`, readable by its owner only (mode 0600) from the first byte: the
 * file is created with that mode (a umask can only take bits away), never opened when it exists.
 * With `force`, an existing file is replaced by a new one renamed over it, so neither its old
 * mode nor a link standing at `path` carries over.
 */
function writePrivateFile (path: string, text: string, force: boolean): void {
  if (!force) {
    // `wx`: refused when the file exists, checked and created in one step.
    writeFileSync(path, text, { mode: 0o600, flag: 'wx' })
    chmodSync(path, 0o600)
    return
  }
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    writeFileSync(temporary, text, { mode: 0o600, flag: 'wx' })
    chmodSync(temporary, 0o600)
    renameSync(temporary, path)
  } finally {
    rmSync(temporary, { force: true })
  }
}

/** `generate-key`: a new key pair whose kid is its RFC 7638 thumbprint, so it is fresh and stable. */
function generateKey (args: readonly string[], io: CliIo): number {
  const alg = flag(args, '--alg')
  const format = flag(args, '--format')
  const outFile = flag(args, '--out')
  if (alg === undefined || !Object.hasOwn(KEY_PAIRS, alg) || (format !== undefined && !FORMATS.includes(format)) || outFile === '') {
    io.stderr.write('Usage: fastify-token-auth generate-key --alg ES256|RS256|PS256|EdDSA [--format jwk|jwks|pem] [--out FILE [--force]]\n')
    return 1
  }
  const { privateKey, publicKey } = KEY_PAIRS[alg as keyof typeof KEY_PAIRS]()
  const kid = jwkThumbprint(publicKey.export({ format: 'jwk' }))
  const jwk = { kid, alg, use: 'sig', ...privateKey.export({ format: 'jwk' }) }
  const pem = String(privateKey.export({ type: 'pkcs8', format: 'pem' })) + String(publicKey.export({ type: 'spki', format: 'pem' }))
  const out: Record<string, string> = {
    jwk: JSON.stringify(jwk, null, 2) + '\n',
    jwks: JSON.stringify({ keys: [jwk] }, null, 2) + '\n',
    pem
  }
  if (outFile === undefined) {
    io.stdout.write(format === undefined ? `${out.jwk}\n${pem}` : out[format] as string)
    return 0
  }
  // A file holds one form: the JWK Set that JWT_KEYS_FILE and the `keys` option take, by default.
  const written = format ?? 'jwks'
  try {
    writePrivateFile(outFile, out[written] as string, args.includes('--force'))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    io.stderr.write(code === 'EEXIST'
      ? `${outFile} already exists: not overwritten. Pass --force to replace it, or choose another --out.\n`
      : `Cannot write ${outFile}: ${(error as Error).message}\n`)
    return 1
  }
  io.stdout.write(`Wrote a new ${alg} private key (kid ${kid}, ${written}) to ${outFile}, with mode 0600: readable by its owner only. Keep it secret.\n`)
  return 0
}

/** Prints why the command line is wrong, then the usage, on standard error. */
function usageError (io: CliIo, problem: string): number {
  io.stderr.write(`${COMMAND}: ${problem}\n\n${USAGE}`)
  return USAGE_ERROR
}

/** Runs the CLI and resolves the process exit code. */
export async function runCli (args: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = args
  if (args.some((arg) => arg === '--help' || arg === '-h') || command === 'help') {
    io.stdout.write(USAGE)
    return 0
  }
  if (command === '--version' || command === '-v') {
    io.stdout.write(VERSION + '\n')
    return 0
  }
  if (command === undefined) return usageError(io, 'no command given')
  if (!Object.hasOwn(COMMAND_OPTIONS, command)) {
    return usageError(io, command.startsWith('-') ? `unknown option "${command}"` : `unknown command "${command}"`)
  }
  const problem = unknownArgument(command, rest)
  if (problem !== undefined) return usageError(io, problem)

  if (command === 'generate-secret') {
    io.stdout.write(randomBytes(32).toString('base64url') + '\n')
    return 0
  }
  if (command === 'generate-key') return generateKey(rest, io)
  // hash-password, the one command left.
  let password: string
  try {
    password = io.stdin.isTTY === true ? await readHidden(io) : await readPiped(io)
  } catch {
    io.stderr.write('Cancelled.\n')
    return 130
  }
  if (password.length === 0) {
    io.stderr.write('No password given on standard input.\n')
    return 1
  }
  io.stdout.write(await hashPassword(password) + '\n')
  return 0
}
