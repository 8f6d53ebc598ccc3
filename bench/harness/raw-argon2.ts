/*
 * The most logins a second this machine can hash: argon2.verify run directly, in the bench
 * process, with the plugin's default parameters. The /token target is a ratio to this figure.
 */
import argon2 from 'argon2'
// The built package, as the server under test runs it (and as tap does not count for coverage).
import { hashPassword } from 'fastify-token-auth'

/** `argon2.verify` with the plugin's default parameters, `concurrency` at a time, for `seconds`. */
export async function rawArgon2 (concurrency: number, seconds: number): Promise<{ perSecond: number, parameters: string }> {
  const hash = await hashPassword('password1')
  const parameters = /\$(m=\d+,t=\d+,p=\d+)\$/.exec(hash)?.[1] ?? 'unknown'
  await argon2.verify(hash, 'password1')
  let count = 0
  const start = performance.now()
  const end = start + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      if (!await argon2.verify(hash, 'password1')) throw new Error('raw argon2: the hash did not verify')
      count += 1
    }
  }))
  return { perSecond: count / ((performance.now() - start) / 1000), parameters }
}
