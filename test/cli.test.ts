import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { PassThrough, Readable } from 'node:stream'
import { promisify } from 'node:util'
import { EventEmitter } from 'node:events'
import { exitOnOutputError, runCli, type CliIo } from '../lib/cli/cli.js'
import { verifyPassword } from '../lib/index.js'
import { DEFAULTS } from '../lib/options/defaults.js'
import { resolveOptions } from '../lib/options/resolve.js'
import { buildApp, SECRET as JWT_SECRET, tokenRequest } from './helper.js'

/*
 * The `fastify-token-auth` command: `runCli` with fake streams, and once the built binary.
 */

/** A (sub)test: what `t.test` hands its callback. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const ARGON2ID = /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/
const SECRET = /^[A-Za-z0-9_-]{43}$/

interface FakeIo extends CliIo {
  out: () => string
  err: () => string
}

function fakeIo (stdin: CliIo['stdin']): FakeIo {
  let out = ''
  let err = ''
  return {
    stdin,
    stdout: { write: (text: string) => { out += text } },
    stderr: { write: (text: string) => { err += text } },
    out: () => out,
    err: () => err
  }
}

/** A terminal: a PassThrough that says it is a TTY and records raw-mode switches. */
function fakeTty (): PassThrough & { isTTY: boolean, setRawMode: (mode: boolean) => unknown, rawModes: boolean[] } {
  const rawModes: boolean[] = []
  const tty = Object.assign(new PassThrough(), {
    isTTY: true,
    rawModes,
    setRawMode (mode: boolean) { rawModes.push(mode); return tty }
  })
  return tty
}

/** Runs `hash-password` on a fake terminal that receives `keys`, one chunk each. */
async function typed (keys: Array<string | Buffer>) {
  const tty = fakeTty()
  const io = fakeIo(tty)
  const running = runCli(['hash-password'], io)
  for (const chunk of keys) tty.write(chunk)
  const code = await running
  return { code, io, tty }
}

/** The one line on stdout, which must be a hash. */
function printedHash (tt: Tap, io: FakeIo): string {
  const out = io.out()
  tt.match(out, /^[^\n]+\n$/, 'one line on stdout')
  const hash = out.trimEnd()
  tt.match(hash, ARGON2ID)
  return hash
}

t.test('generate-secret prints 32 random bytes as 43 base64url characters', async (t) => {
  const first = fakeIo(Readable.from([]))
  t.equal(await runCli(['generate-secret'], first), 0)
  t.match(first.out(), /\n$/)
  const secret = first.out().trimEnd()
  t.match(secret, SECRET)
  t.equal(Buffer.from(secret, 'base64url').length, 32)
  t.equal(first.err(), '')

  const second = fakeIo(Readable.from([]))
  await runCli(['generate-secret'], second)
  t.not(second.out(), first.out(), 'two runs differ')
})

t.test('hash-password with piped input', async (t) => {
  t.test('prints an argon2id hash of the input, the trailing newline stripped', async (t) => {
    const io = fakeIo(Readable.from(['pw\n']))
    t.equal(await runCli(['hash-password'], io), 0)
    const hash = printedHash(t, io)
    t.equal(await verifyPassword(hash, 'pw'), true)
    t.equal(await verifyPassword(hash, 'pw\n'), false)
    t.equal(io.err(), '', 'no prompt when piped')
  })

  t.test('OWASP parameters by default (m=19456, t=2, p=1)', async (t) => {
    const io = fakeIo(Readable.from(['pw']))
    await runCli(['hash-password'], io)
    t.match(printedHash(t, io), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  })

  t.test('input in several chunks, CRLF, and only one newline stripped', async (t) => {
    const cases: Array<[chunks: Array<string | Buffer>, password: string]> = [
      [['pass', Buffer.from('wörd'), '\r\n'], 'passwörd'],
      [['two lines\n\n'], 'two lines\n'],
      // A character split between two chunks ("ö" is C3 B6).
      [[Buffer.from([0x70, 0xc3]), Buffer.from([0xb6, 0x0a])], 'pö'],
      [['no newline'], 'no newline'],
      [[' spaced \n'], ' spaced ']
    ]
    for (const [chunks, password] of cases) {
      const io = fakeIo(Readable.from(chunks))
      t.equal(await runCli(['hash-password'], io), 0)
      t.equal(await verifyPassword(printedHash(t, io), password), true, JSON.stringify(password))
    }
  })

  t.test('input that is not UTF-8 exits 1 and hashes nothing, rather than U+FFFD in place of its bytes', async (t) => {
    const cases: Array<[name: string, chunks: Buffer[]]> = [
      ['bytes no UTF-8 text has', [Buffer.from([0xff, 0xfe])]],
      ['Latin-1', [Buffer.from('passw\u00f6rd\n', 'latin1')]],
      ['an overlong "/"', [Buffer.from([0x61, 0xc0, 0xaf])]],
      ['a UTF-16 surrogate', [Buffer.from([0xed, 0xa0, 0x80])]],
      ['a character broken across two chunks', [Buffer.from([0x70, 0xc3]), Buffer.from('(\n')]],
      ['input ending inside a character', [Buffer.from('pass'), Buffer.from([0xc3])]]
    ]
    for (const [name, chunks] of cases) {
      const io = fakeIo(Readable.from(chunks))
      t.equal(await runCli(['hash-password'], io), 1, name)
      t.equal(io.out(), '', 'no hash')
      t.match(io.err(), /not valid UTF-8.*nothing was hashed/)
    }
  })

  t.test('a byte-order mark at the start is not part of the password: no login form sends one', async (t) => {
    const io = fakeIo(Readable.from([Buffer.from('\ufeffpw\n')]))
    t.equal(await runCli(['hash-password'], io), 0)
    t.equal(await verifyPassword(printedHash(t, io), 'pw'), true)
  })

  t.test('standard input that fails to read exits 1 and says so, rather than "Cancelled"', async (t) => {
    const failing = new Readable({ read () { this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })) } })
    const io = fakeIo(failing)
    t.equal(await runCli(['hash-password'], io), 1)
    t.equal(io.out(), '')
    t.equal(io.err(), 'Cannot read standard input: EIO: i/o error, read\n')
  })

  t.test('a password /token would refuse for its length is refused, counted as /token counts it', async (t) => {
    const max = DEFAULTS.password.maxLength
    t.equal(max, 1024, 'the default this test was written for')
    const app = await buildApp(t)
    const tooLongForToken = async (password: string): Promise<boolean> => {
      const res = await tokenRequest(app, { grant_type: 'password', username: 'user1', password })
      return res.statusCode === 400 && res.json().error === 'invalid_request'
    }
    const cases: Array<[name: string, input: string, password: string | undefined]> = [
      ['exactly the limit', 'a'.repeat(max), 'a'.repeat(max)],
      ['the limit and CRLF', 'a'.repeat(max) + '\r\n', 'a'.repeat(max)],
      ['one over', 'a'.repeat(max + 1), undefined],
      ['one over, and a newline', 'a'.repeat(max + 1) + '\n', undefined],
      ['two over, and CRLF', 'a'.repeat(max + 2) + '\r\n', undefined],
      // UTF-16 code units, as String length and /token count them: an emoji is two.
      ['an emoji that takes it one over', 'a'.repeat(max - 1) + '😀', undefined],
      ['2,000,000 characters', 'x'.repeat(2_000_000), undefined]
    ]
    for (const [name, input, password] of cases) {
      const io = fakeIo(Readable.from([input]))
      if (password === undefined) {
        t.equal(await runCli(['hash-password'], io), 1, `${name}: exit 1`)
        t.equal(io.out(), '', 'no hash')
        t.match(io.err(), new RegExp(`longer than ${max} characters.*password\\.maxLength.*--max-length`))
        t.equal(await tooLongForToken(input.replace(/\r?\n$/, '')), true, `${name}: /token refuses it too`)
      } else {
        t.equal(await runCli(['hash-password'], io), 0, name)
        t.equal(await verifyPassword(printedHash(t, io), password), true)
        t.equal(await tooLongForToken(password), false, `${name}: /token takes it`)
      }
    }
  })

  t.test('an endless input is not read past the limit (`< /dev/zero` would read for ever)', async (t) => {
    let pulled = 0
    const endless = Readable.from((function * () {
      for (;;) {
        pulled++
        yield Buffer.alloc(100, 0x61)
      }
    })())
    const io = fakeIo(endless)
    t.equal(await runCli(['hash-password'], io), 1)
    t.match(io.err(), /longer than 1024 characters/)
    t.ok(pulled <= 20, `stopped after ${pulled} chunks of 100 bytes`)
    t.ok(endless.destroyed, 'and let the stream go')
  })

  t.test('--max-length N: the limit of a server whose password.maxLength is not the default', async (t) => {
    const raised = fakeIo(Readable.from(['b'.repeat(2000) + '\n']))
    t.equal(await runCli(['hash-password', '--max-length', '2048'], raised), 0)
    t.equal(await verifyPassword(printedHash(t, raised), 'b'.repeat(2000)), true)

    const lowered = fakeIo(Readable.from(['123456789']))
    t.equal(await runCli(['hash-password', '--max-length=8'], lowered), 1)
    t.match(lowered.err(), /longer than 8 characters/)

    // Every limit the plugin accepts, and no other.
    const findUser = async () => null
    t.doesNotThrow(() => resolveOptions({ secret: JWT_SECRET, findUser, password: { maxLength: 65536 } }))
    t.throws(() => resolveOptions({ secret: JWT_SECRET, findUser, password: { maxLength: 65537 } }), { code: 'FST_TOKEN_AUTH_INVALID_OPTION' })
    const highest = fakeIo(Readable.from(['pw']))
    t.equal(await runCli(['hash-password', '--max-length', '65536'], highest), 0)
    for (const value of ['65537', '0', '-1', '1e3', '12.5', 'hunter2', '99999999999999999999']) {
      const io = fakeIo(Readable.from(['never read\n']))
      t.equal(await runCli(['hash-password', '--max-length', value], io), 2, `--max-length ${value}: a usage error`)
      t.equal(io.out(), '')
      t.match(io.err(), /--max-length takes a whole number from 1 to 65536/)
      t.notMatch(io.err(), /hunter2/, 'the value, maybe a password, is not repeated')
    }
    for (const args of [['--max-length'], ['--max-length='], ['--max-length', '10', '--max-length', '20']]) {
      t.equal(await runCli(['hash-password', ...args], fakeIo(Readable.from([]))), 2, JSON.stringify(args))
    }
  })

  t.test('empty input exits 1 and prints nothing on stdout', async (t) => {
    for (const chunks of [[], [''], ['\n'], ['\r\n']]) {
      const io = fakeIo(Readable.from(chunks))
      t.equal(await runCli(['hash-password'], io), 1, JSON.stringify(chunks))
      t.equal(io.out(), '')
      t.not(io.err(), '', 'says why on stderr')
    }
  })
})

t.test('hash-password on a terminal', async (t) => {
  t.test('reads without echo, honours backspace, turns raw mode on then off', async (t) => {
    // "sez", backspace, "cret" + Enter: the password is "secret".
    const { code, io, tty } = await typed(['sez', '\u007f', 'cret\r'])
    t.equal(code, 0)
    const hash = printedHash(t, io)
    t.equal(await verifyPassword(hash, 'secret'), true)
    t.equal(await verifyPassword(hash, 'secrett'), false)
    t.same(tty.rawModes, [true, false])
    t.equal(tty.isPaused(), true, 'stdin is let go, so the process can exit')
    // Nothing typed comes back: stdout holds the hash only, stderr the prompt only.
    t.notMatch(io.err(), /sez|secret|cret|\*{2,}/, 'no echo, not even masked')
    t.notMatch(io.out().replace(hash, ''), /\S/)
  })

  t.test('every way to end or edit a line', async (t) => {
    const cases: Array<[keys: string[], password: string]> = [
      [['abc\n'], 'abc'],
      [['abc\u0004'], 'abc'],
      [['abx\b', 'c\r'], 'abc'],
      [['abc\rignored'], 'abc'],
      [['\u007fabc\r'], 'abc'],
      [['pé😀\u007f\u007fe\r'], 'pe'],
      [['ab', 'c', '\r'], 'abc']
    ]
    for (const [keys, password] of cases) {
      const { code, io, tty } = await typed(keys)
      t.equal(code, 0, JSON.stringify(keys))
      t.equal(await verifyPassword(printedHash(t, io), password), true, `${JSON.stringify(keys)} → ${JSON.stringify(password)}`)
      t.same(tty.rawModes, [true, false])
    }
  })

  t.test('Ctrl-U erases what was typed, as getpass and readline do', async (t) => {
    const cases: Array<[keys: string[], password: string]> = [
      [['wrong\u0015right\r'], 'right'],
      [['ab\u0015', '\u0015cd\r'], 'cd'],
      [['\u0015abc\r'], 'abc']
    ]
    for (const [keys, password] of cases) {
      const { code, io } = await typed(keys)
      t.equal(code, 0, JSON.stringify(keys))
      t.equal(await verifyPassword(printedHash(t, io), password), true, `${JSON.stringify(keys)} → ${JSON.stringify(password)}`)
    }
  })

  t.test('any other editing key stops with exit 1 instead of becoming part of the password', async (t) => {
    const keys: Array<[name: string, sent: string]> = [
      ['Left arrow', '\u001b[D'],
      ['Left arrow, application mode', '\u001bOD'],
      ['Delete', '\u001b[3~'],
      ['Home', '\u001b[H'],
      ['Escape', '\u001b'],
      ['Tab', '\t'],
      ['Ctrl-W', '\u0017'],
      ['Ctrl-K', '\u000b'],
      ['Ctrl-Z', '\u001a'],
      ['Ctrl-@', '\u0000'],
      ['an 8-bit CSI (C1)', '\u009bD']
    ]
    for (const [name, sent] of keys) {
      // The reviewer's case: "abc", the key, then Enter, which would have hashed "abc" + the key's bytes.
      const { code, io, tty } = await typed(['abc', sent, '\r'])
      t.equal(code, 1, `${name}: exit 1`)
      t.equal(io.out(), '', 'no hash')
      t.match(io.err(), /Line editing other than backspace and Ctrl-U is not supported.*nothing was hashed/)
      t.notMatch(io.err(), /abc/, 'what was typed is not shown')
      t.same(tty.rawModes, [true, false], 'raw mode off again')
    }
  })

  t.test('UTF-8 typed in pieces is read whole; bytes that are not UTF-8 stop it with exit 1', async (t) => {
    // A terminal may hand "ö" (C3 B6) over in two reads.
    const split = await typed([Buffer.from([0x70, 0xc3]), Buffer.from([0xb6, 0x0d])])
    t.equal(split.code, 0)
    t.equal(await verifyPassword(printedHash(t, split.io), 'pö'), true)

    // A terminal set to Latin-1.
    const { code, io, tty } = await typed([Buffer.from('pw\u00f6', 'latin1'), Buffer.from('\r')])
    t.equal(code, 1)
    t.equal(io.out(), '')
    t.match(io.err(), /not valid UTF-8.*nothing was hashed/)
    t.same(tty.rawModes, [true, false])
  })

  t.test('typing past the limit stops at once with exit 1; the limit itself is fine', async (t) => {
    const atLimit = await typed(['c'.repeat(1024), '\r'])
    t.equal(atLimit.code, 0)
    t.equal(await verifyPassword(printedHash(t, atLimit.io), 'c'.repeat(1024)), true)

    // No Enter: the prompt gives up as soon as the password cannot be one /token takes.
    const { code, io, tty } = await typed(['c'.repeat(1000), 'c'.repeat(25)])
    t.equal(code, 1)
    t.equal(io.out(), '')
    t.match(io.err(), /longer than 1024 characters/)
    t.same(tty.rawModes, [true, false])
  })

  t.test('a terminal that closes or fails before Enter: exit 1, nothing hashed, raw mode off', async (t) => {
    const closed = fakeTty()
    const closedIo = fakeIo(closed)
    const closing = runCli(['hash-password'], closedIo)
    closed.end('abc')
    t.equal(await closing, 1)
    t.equal(closedIo.out(), '')
    t.match(closedIo.err(), /Standard input closed before Enter: nothing was hashed/)
    t.same(closed.rawModes, [true, false])

    const failed = fakeTty()
    const failedIo = fakeIo(failed)
    const failing = runCli(['hash-password'], failedIo)
    failed.write('abc')
    failed.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }))
    t.equal(await failing, 1)
    t.equal(failedIo.out(), '')
    t.match(failedIo.err(), /Cannot read standard input: EIO: i\/o error, read/)
    t.same(failed.rawModes, [true, false])
  })

  t.test('Ctrl-C cancels with exit code 130, raw mode off, nothing printed', async (t) => {
    const { code, io, tty } = await typed(['secr', '\u0003', 'et\r'])
    t.equal(code, 130)
    t.equal(io.out(), '')
    t.notMatch(io.err(), /secr/)
    t.same(tty.rawModes, [true, false])
  })

  t.test('Enter at once is an empty password: exit 1', async (t) => {
    const { code, io, tty } = await typed(['\r'])
    t.equal(code, 1)
    t.equal(io.out(), '')
    t.same(tty.rawModes, [true, false])
  })

  t.test('a terminal without setRawMode still works', async (t) => {
    const tty = Object.assign(new PassThrough(), { isTTY: true })
    const io = fakeIo(tty)
    const running = runCli(['hash-password'], io)
    tty.write('abc\r')
    t.equal(await running, 0)
    t.equal(await verifyPassword(printedHash(t, io), 'abc'), true)
  })
})

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string, version: string }

t.test('--help and help print the usage on stdout and exit 0; it names every command and option', async (t) => {
  for (const args of [['--help'], ['-h'], ['help'], ['generate-key', '--help'], ['hash-password', '-h']]) {
    const io = fakeIo(Readable.from([]))
    t.equal(await runCli(args, io), 0, `${JSON.stringify(args)} exits 0`)
    t.equal(io.err(), '')
    t.match(io.out(), new RegExp(`^Usage: ${pkg.name} <command>`))
    for (const word of ['hash-password', '--max-length', 'Ctrl-U', 'generate-secret', 'generate-key', '--alg', '--format', '--out', '--force', '--help', '--version']) {
      t.match(io.out(), word, `documents ${word}`)
    }
  }
})

t.test('--version prints the package version and exits 0', async (t) => {
  for (const flag of ['--version', '-v']) {
    const io = fakeIo(Readable.from([]))
    t.equal(await runCli([flag], io), 0)
    t.equal(io.out(), pkg.version + '\n')
    t.equal(io.err(), '')
  }
})

t.test('the CLI never repeats an unknown command or an argument of hash-password, which may be a password, in its error', async (t) => {
  for (const args of [['hunter2'], ['-hunter2'], ['hash-password', 'hunter2'], ['hash-password', 'correct horse'], ['hash-password', '--', 'hunter2'], ['hash-password', '-hunter2'], ['hash-password', '--hunter2=horse']]) {
    const io = fakeIo(Readable.from(['never read\n']))
    t.equal(await runCli(args, io), 2, JSON.stringify(args))
    t.equal(io.out(), '')
    t.notMatch(io.err(), /hunter2|horse/, 'the argument is not echoed')
  }
})

t.test('a command line it does not understand: why and the usage on stderr, exit 2', async (t) => {
  const cases: Array<[args: string[], why: RegExp]> = [
    [[], /no command given/],
    [['frobnicate'], /unknown command \(the commands are hash-password, generate-secret, generate-key\)/],
    [['generate-secrets'], /unknown command \(the commands are/],
    [['--frob'], /unknown option \(the commands are/],
    [['generate-secret', '--length', '64'], /unknown option "--length" for generate-secret/],
    [['hash-password', 'my-password'], /hash-password takes no arguments: the password is read from standard input or the prompt/],
    [['generate-key', '--alg', 'ES256', '--curve=P-384'], /unknown option "--curve" for generate-key/],
    [['generate-key', '--alg', 'ES256', 'extra'], /unexpected argument "extra"/]
  ]
  for (const [args, why] of cases) {
    const io = fakeIo(Readable.from(['never read\n']))
    t.equal(await runCli(args, io), 2, `${JSON.stringify(args)} exits 2`)
    t.equal(io.out(), '', 'nothing on stdout')
    t.match(io.err(), why)
    t.match(io.err(), /Usage: .*\n[\s\S]*hash-password[\s\S]*generate-key/)
  }
})

t.test('output that cannot be written: exit 1, at most one line, never a stack trace', async (t) => {
  const setUp = () => {
    const stdout = new EventEmitter()
    const stderr = Object.assign(new EventEmitter(), { text: '', write (text: string) { stderr.text += text } })
    const exits: number[] = []
    exitOnOutputError({ stdout, stderr }, (code) => { exits.push(code) })
    return { stdout, stderr, exits }
  }
  const failure = (code: string, message: string) => Object.assign(new Error(message), { code })

  // `generate-secret | head -c 8`: the reader has gone, as SIGPIPE would end another tool, quietly.
  const gone = setUp()
  gone.stdout.emit('error', failure('EPIPE', 'write EPIPE'))
  t.same(gone.exits, [1])
  t.equal(gone.stderr.text, '')

  const full = setUp()
  full.stdout.emit('error', failure('ENOSPC', 'ENOSPC: no space left on device, write'))
  t.same(full.exits, [1])
  t.equal(full.stderr.text, `${pkg.name}: cannot write to standard output: ENOSPC: no space left on device, write\n`)

  // Nowhere left to say it.
  const noStderr = setUp()
  noStderr.stderr.emit('error', failure('EPIPE', 'write EPIPE'))
  t.same(noStderr.exits, [1])
  t.equal(noStderr.stderr.text, '')
})

const BIN = fileURLToPath(new URL('../dist/esm/cli/bin.js', import.meta.url))
const built = existsSync(BIN)

interface BinRun { code: number | null, stdout: string, stderr: string }

/**
 * Runs the built binary. `stdin` and `stdout` are what the child gets: a file descriptor, or a
 * pipe (`input` is written to stdin's); for stdout, 'closed' is a pipe whose reader has gone.
 */
async function runBin (args: string[], { stdin = 'pipe', stdout = 'pipe', input = '' }: { stdin?: 'pipe' | number, stdout?: 'pipe' | 'closed' | number, input?: string } = {}): Promise<BinRun> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: [stdin, stdout === 'closed' ? 'pipe' : stdout, 'pipe'], timeout: 20_000 })
  const run: BinRun = { code: null, stdout: '', stderr: '' }
  if (stdout === 'closed') child.stdout?.destroy()
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { run.stdout += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { run.stderr += chunk })
  // A command that does not read its input may have exited before the write: not this test's concern.
  child.stdin?.on('error', () => {}).end(input)
  run.code = await new Promise((resolve) => child.on('close', resolve))
  return run
}

t.test('the built binary', { skip: built ? false : 'dist/esm/cli/bin.js is missing: run `npm run build` first' }, async (t) => {
  t.test('generate-secret', async (t) => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'generate-secret'])
    t.match(stdout, /^[A-Za-z0-9_-]{43}\n$/)
    t.equal(stderr, '')
  })

  t.test('hash-password from a pipe', async (t) => {
    const child = spawn(process.execPath, [BIN, 'hash-password'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stdin.end('from-a-pipe\n')
    const code = await new Promise((resolve) => child.on('close', resolve))
    t.equal(code, 0)
    t.equal(await verifyPassword(stdout.trimEnd(), 'from-a-pipe'), true)
  })

  t.test('hash-password < /dev/zero stops at the limit instead of reading for ever', { skip: existsSync('/dev/zero') ? false : 'no /dev/zero' }, async (t) => {
    const zero = openSync('/dev/zero', 'r')
    t.teardown(() => closeSync(zero))
    const { code, stdout, stderr } = await runBin(['hash-password'], { stdin: zero })
    t.equal(code, 1)
    t.equal(stdout, '')
    t.match(stderr, /^The password is longer than 1024 characters/)
  })

  t.test('a reader that has gone (`generate-secret | true`): exit 1, quietly', async (t) => {
    const { code, stderr } = await runBin(['generate-secret'], { stdout: 'closed' })
    t.equal(code, 1)
    t.equal(stderr, '', 'no stack trace, nor anything else')
  })

  t.test('a full disk (`hash-password > /dev/full`): exit 1 and one line', { skip: existsSync('/dev/full') ? false : 'no /dev/full' }, async (t) => {
    const full = openSync('/dev/full', 'w')
    t.teardown(() => closeSync(full))
    for (const [args, input] of [[['hash-password'], 'pw\n'], [['generate-key', '--alg', 'EdDSA'], '']] as const) {
      const { code, stderr } = await runBin([...args], { stdout: full, input })
      t.equal(code, 1, args.join(' '))
      t.match(stderr, new RegExp(`^${pkg.name}: cannot write to standard output: ENOSPC[^\\n]*\\n$`), 'one line, no stack trace')
    }
  })

  t.test('an unknown command exits 2 with the usage on stderr', async (t) => {
    const error = await promisify(execFile)(process.execPath, [BIN, 'nope']).then(() => undefined, (e: unknown) => e)
    t.match(error, { code: 2, stdout: '', stderr: /hash-password/ })
  })

  t.test('--version, as installed: the version read from the package.json next to dist/', async (t) => {
    t.equal((await promisify(execFile)(process.execPath, [BIN, '--version'])).stdout, pkg.version + '\n')
  })
})
