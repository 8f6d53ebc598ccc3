import t from 'tap'
import { readFileSync } from 'node:fs'

/*
 * The README's Quick start is examples/quick-start.ts, character for character: the file is what
 * the release check runs against the packed tarball, so the README shows code that runs.
 */

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const example = readFileSync(new URL('../examples/quick-start.ts', import.meta.url), 'utf8')

/** The first ```ts block after the `## Quick start` heading, or undefined. */
function quickStartBlock (markdown: string): string | undefined {
  const section = markdown.split(/^## Quick start[ \t]*$/m)[1]
  if (section === undefined) return undefined
  return /^```ts\n([\s\S]*?)^```$/m.exec(section)?.[1]
}

t.test('the README has a Quick start section with a ```ts block', async (t) => {
  t.type(quickStartBlock(readme), 'string')
})

t.test('the README\'s Quick start block is examples/quick-start.ts', async (t) => {
  t.equal(quickStartBlock(readme), example)
})

t.test('the block is read up to its closing fence only', async (t) => {
  const markdown = '# x\n\n```ts\nnot this\n```\n\n## Quick start\n\nSome words.\n\n```ts\nconst a = 1\n```\n\n```ts\nnor this\n```\n'
  t.equal(quickStartBlock(markdown), 'const a = 1\n')
  t.equal(quickStartBlock('## Quick starts\n```ts\nx\n```\n'), undefined)
})
