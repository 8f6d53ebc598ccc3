import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { hashPassword } from '../password/hasher.js'
import { jwkThumbprint } from '../options/keys.js'
import { DEFAULTS } from '../options/defaults.js'

/** The streams the CLI talks to; the real process's in `bin.ts`, fakes in tests. */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean, setRawMode?: (mode: boolean) => unknown }
  stdout: { write: (text: string) => unknown }
  stderr: { write: (text: string) => unknown }
}

// Read through the package's own name (self-reference through `exports`), the same from lib/
// in the repository and from dist/ once installed. `name` is also the command's name (`bin`).
const { name: COMMAND, version: VERSION } = createRequire(import.meta.url)('fastify-token-auth/package.json') as { name: string, version: string }

/**
 * The largest `password.maxLength` the plugin accepts (lib/options/resolve.ts); test/cli.test.ts
 * checks that the two agree, so `--max-length` takes every limit a server can have.
 */
const MAX_LENGTH_CEILING = 65536

const USAGE = `Usage: ${COMMAND} <command> [options]

Commands:
  hash-password [--max-length N]
                    print the argon2id hash of a password, for a user record's passwordHash:
                    typed at the prompt (not echoed; backspace and Ctrl-U edit, other
                    editing keys stop it) or read from standard input (UTF-8; one trailing
                    newline removed). A password longer than N characters is refused, as
                    /token refuses it: N is the server's password.maxLength, ${DEFAULTS.password.maxLength} by default
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
  'hash-password': ['--max-length'],
  'generate-secret': [],
  'generate-key': ['--alg', '--format', '--out']
}

/** The options each command takes that have no value (switches). */
const COMMAND_SWITCHES: Record<string, readonly string[]> = {
  'generate-key': ['--force']
}

/** Prints why the command line is wrong, then the usage, on standard error. */
function usageError (io: CliIo, problem: string): number {
  io.stderr.write(`${COMMAND}: ${problem}\n\n${USAGE}`)
  return USAGE_ERROR
}

/** A command's arguments taken apart: the value of each option given, and the switches given. */
interface Parsed {
  values: Map<string, string>
  switches: Set<string>
}

/**
 * Takes a command's arguments apart, or says what is wrong with them: an unknown option, a
 * stray argument, an option without its value, or one given twice (which of two values was
 * meant is a guess, and a wrong guess writes a key the user did not ask for).
 */
function parseArguments (command: string, args: readonly string[]): Parsed | string {
  const options = COMMAND_OPTIONS[command] as readonly string[]
  const switches = COMMAND_SWITCHES[command] ?? []
  const parsed: Parsed = { values: new Map(), switches: new Set() }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (!arg.startsWith('-')) {
      // Most likely a password: repeated in the message, it would land in terminal scrollback and CI logs.
      return command === 'hash-password'
        ? 'hash-password takes no arguments: the password is read from standard input or the prompt'
        : `unexpected argument "${arg}"`
    }
    const equals = arg.indexOf('=')
    const name = equals === -1 ? arg : arg.slice(0, equals)
    if (parsed.values.has(name) || parsed.switches.has(name)) return `option ${name} given more than once`
    if (switches.includes(name)) {
      if (equals !== -1) return `option ${name} takes no value`
      parsed.switches.add(name)
    } else if (options.includes(name)) {
      // A flag's value is never the next flag (`--out --force` names no file called "--force").
      const value = equals === -1 ? args[++i] : arg.slice(equals + 1)
      if (value === undefined || value === '' || (equals === -1 && value.startsWith('--'))) return `option ${name} needs a value`
      parsed.values.set(name, value)
    } else {
      // `hash-password -hunter2`: as a stray argument, not repeated.
      return command === 'hash-password' ? 'unknown option for hash-password, which takes --max-length only' : `unknown option "${name}" for ${command}`
    }
  }
  return parsed
}

/** Why there is no password to hash, and the exit status to stop with. */
interface Failure { failure: string, code: number }
/** What reading a password gave. */
type Read = { password: string } | Failure

const NOT_UTF8: Failure = {
  failure: 'The password is not valid UTF-8, the encoding /token reads it in: nothing was hashed. Set the terminal, or convert the file, to UTF-8.',
  code: 1
}
const CANCELLED: Failure = { failure: 'Cancelled.', code: 130 }
const LINE_EDITING: Failure = {
  failure: 'Line editing other than backspace and Ctrl-U is not supported (arrow keys, Tab, Ctrl-W…): nothing was hashed. Type the password again.',
  code: 1
}

/**
 * A control character (ECMA-48 C0, U+0000–U+001F, ESC among them; or C1, U+0080–U+009F, which
 * terminals in 8-bit mode send for ESC [). In raw mode every key arrives as what it sends: an
 * arrow key is "ESC [ D", Tab is U+0009. Taken into the password they would be hashed unseen,
 * since nothing is echoed, and the user would never log in with the password they meant.
 */
function isControl (char: string): boolean {
  const code = char.codePointAt(0) as number
  return code < 0x20 || (code >= 0x80 && code < 0xa0)
}

/** Standard input failed: a terminal hung up, a directory given as `< dir`. */
function readError (error: Error): Failure {
  return { failure: `Cannot read standard input: ${error.message}`, code: 1 }
}

/** A password /token would refuse (password.maxLength), so hashing it would only lock its user out. */
function tooLong (maxLength: number): Failure {
  return {
    failure: `The password is longer than ${maxLength} characters, which /token refuses (password.maxLength): nothing was hashed. ` +
      'If the server allows longer passwords, pass its password.maxLength as --max-length.',
    code: 1
  }
}

/**
 * A strict UTF-8 decoder, fed chunk by chunk (a character may straddle two), and called without
 * a chunk at the end; undefined once the bytes are not UTF-8. A lenient one would put U+FFFD in
 * their place and hash a password that nobody can type. A leading byte-order mark is dropped
 * (TextDecoder's default): no login form sends one.
 */
function utf8Decoder (): (chunk?: Buffer | string) => string | undefined {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  return (chunk) => {
    try {
      if (chunk === undefined) return decoder.decode()
      return decoder.decode(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, { stream: true })
    } catch {
      return undefined
    }
  }
}

/** Reads a password typed at a terminal, without echoing it; at most `maxLength` characters. */
async function readHidden (io: CliIo, maxLength: number): Promise<Read> {
  const { stdin } = io
  io.stderr.write('Password: ')
  stdin.setRawMode?.(true)
  stdin.resume()
  const decode = utf8Decoder()
  try {
    return await new Promise<Read>((resolve) => {
      let typed = ''
      const finish = (read: Read): void => {
        stdin.off('data', onData).off('end', onEnd).off('error', onError)
        resolve(read)
      }
      // A terminal that closes before Enter would otherwise leave nothing to wait for, and the
      // process would exit 0 without a hash; one that fails would throw an unhandled 'error'.
      const onEnd = (): void => finish({ failure: 'Standard input closed before Enter: nothing was hashed.', code: 1 })
      const onError = (error: Error): void => finish(readError(error))
      const onData = (chunk: Buffer | string): void => {
        const text = decode(chunk)
        if (text === undefined) return finish(NOT_UTF8)
        for (const char of text) {
          if (char === '\r' || char === '\n' || char === '\u0004') return finish({ password: typed })
          if (char === '\u0003') return finish(CANCELLED)
          if (char === '\u007f' || char === '\b') {
            // Backspace and delete take back the last character.
            typed = [...typed].slice(0, -1).join('')
          } else if (char === '\u0015') {
            // Ctrl-U erases the whole line, as getpass(3) and readline do.
            typed = ''
          } else if (isControl(char)) {
            return finish(LINE_EDITING)
          } else {
            typed += char
            if (typed.length > maxLength) return finish(tooLong(maxLength))
          }
        }
      }
      stdin.on('data', onData).on('end', onEnd).on('error', onError)
    })
  } finally {
    stdin.setRawMode?.(false)
    stdin.pause()
    io.stderr.write('\n')
  }
}

/**
 * Reads piped standard input; one trailing newline is not part of the password. Reading stops
 * once the input is past `maxLength` and the newline, so that neither a huge file nor an endless
 * stream (`< /dev/zero`) is held in memory; leaving the loop early destroys the stream.
 */
async function readPiped (stdin: CliIo['stdin'], maxLength: number): Promise<Read> {
  const decode = utf8Decoder()
  let text = ''
  try {
    for await (const chunk of stdin) {
      const decoded = decode(chunk as Buffer | string)
      if (decoded === undefined) return NOT_UTF8
      text += decoded
      // "\r\n" is the longest newline removed.
      if (text.length > maxLength + 2) return tooLong(maxLength)
    }
  } catch (error) {
    return readError(error as Error)
  }
  // Input that ends inside a character is not UTF-8 either.
  const last = decode()
  if (last === undefined) return NOT_UTF8
  return { password: (text + last).replace(/\r?\n$/, '') }
}

// Key generation parameters for each algorithm (RFC 7518 §3.3: RSA keys of at least 2048 bits).
const KEY_PAIRS = {
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  PS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  EdDSA: () => generateKeyPairSync('ed25519')
}
const FORMATS = ['jwk', 'jwks', 'pem']

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
function generateKey ({ values, switches }: Parsed, io: CliIo): number {
  const alg = values.get('--alg')
  const format = values.get('--format')
  const outFile = values.get('--out')
  if (alg === undefined) return usageError(io, 'generate-key needs --alg ES256, RS256, PS256 or EdDSA')
  if (!Object.hasOwn(KEY_PAIRS, alg)) {
    // HS256 and its kin sign with a shared secret, which is not a key pair.
    const hmac = /^HS\d+$/.test(alg) ? ' (for HMAC, make a secret with generate-secret)' : ''
    return usageError(io, `unsupported --alg "${alg}": ES256, RS256, PS256 or EdDSA${hmac}`)
  }
  if (format !== undefined && !FORMATS.includes(format)) return usageError(io, `unknown --format "${format}": jwk, jwks or pem`)
  // Alone, --force would suggest that something gets replaced, while the key only goes to stdout.
  if (switches.has('--force') && outFile === undefined) return usageError(io, '--force replaces the file named by --out FILE, and there is none')
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
    writePrivateFile(outFile, out[written] as string, switches.has('--force'))
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

/** The process's output streams as `exitOnOutputError` sees them: a failed write arrives as 'error'. */
export interface CliOutputs {
  stdout: { on: (event: 'error', listener: (error: NodeJS.ErrnoException) => void) => unknown }
  stderr: { on: (event: 'error', listener: (error: NodeJS.ErrnoException) => void) => unknown, write: (text: string) => unknown }
}

/**
 * Makes a failed write to standard output or error end the process with exit status 1, instead
 * of the stack trace of an unhandled 'error' event. A reader that has gone (EPIPE: `… | head -c 8`)
 * ends it quietly: other Unix tools die of SIGPIPE there, which Node ignores, so its write fails
 * instead. Any other failure, such as ENOSPC on a full disk, is said in one line on standard
 * error; a failing standard error has nowhere to say it. `exit` ends the process at once: with
 * output lost, nothing the command does after is of use.
 */
export function exitOnOutputError (outputs: CliOutputs, exit: (code: number) => void): void {
  outputs.stdout.on('error', (error) => {
    if (error.code !== 'EPIPE') outputs.stderr.write(`${COMMAND}: cannot write to standard output: ${error.message}\n`)
    exit(1)
  })
  outputs.stderr.on('error', () => { exit(1) })
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
    // Not repeated: a password typed where the command goes would land in scrollback and CI logs.
    const commands = Object.keys(COMMAND_OPTIONS).join(', ')
    return usageError(io, `${command.startsWith('-') ? 'unknown option' : 'unknown command'} (the commands are ${commands})`)
  }
  const parsed = parseArguments(command, rest)
  if (typeof parsed === 'string') return usageError(io, parsed)

  if (command === 'generate-secret') {
    io.stdout.write(randomBytes(32).toString('base64url') + '\n')
    return 0
  }
  if (command === 'generate-key') return generateKey(parsed, io)
  // hash-password, the one command left.
  const limit = parsed.values.get('--max-length')
  const maxLength = limit === undefined ? DEFAULTS.password.maxLength : Number(limit)
  // The value is not repeated: it might be the password, typed in the wrong place.
  if (!/^\d+$/.test(limit ?? '1') || maxLength < 1 || maxLength > MAX_LENGTH_CEILING) {
    return usageError(io, `--max-length takes a whole number from 1 to ${MAX_LENGTH_CEILING}, as password.maxLength does`)
  }
  const read = io.stdin.isTTY === true ? await readHidden(io, maxLength) : await readPiped(io.stdin, maxLength)
  if ('failure' in read) {
    io.stderr.write(read.failure + '\n')
    return read.code
  }
  const { password } = read
  if (password.length === 0) {
    io.stderr.write('No password given on standard input.\n')
    return 1
  }
  // Counted as /token counts it (lib/grants/password.ts): in UTF-16 code units, an emoji as two.
  if (password.length > maxLength) {
    io.stderr.write(tooLong(maxLength).failure + '\n')
    return 1
  }
  io.stdout.write(await hashPassword(password) + '\n')
  return 0
}
