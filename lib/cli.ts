import { randomBytes } from 'node:crypto'
import { hashPassword } from './password.js'

/** The streams the CLI talks to; the real process's in `bin.ts`, fakes in tests. */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean, setRawMode?: (mode: boolean) => unknown }
  stdout: { write: (text: string) => unknown }
  stderr: { write: (text: string) => unknown }
}

const USAGE = `Usage: fastify-jwt-auth <command>

Commands:
  hash-password     read a password from standard input and print its argon2id hash
  generate-secret   print a random 256-bit secret for the "secret" option (base64url)
`

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

/** Runs the CLI and resolves the process exit code. */
export async function runCli (args: readonly string[], io: CliIo): Promise<number> {
  const [command] = args
  if (command === 'generate-secret') {
    io.stdout.write(randomBytes(32).toString('base64url') + '\n')
    return 0
  }
  if (command === 'hash-password') {
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
  const help = command === '--help' || command === '-h' || command === 'help'
  ;(help ? io.stdout : io.stderr).write(USAGE)
  return help ? 0 : 1
}
