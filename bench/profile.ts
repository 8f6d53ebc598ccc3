/*
 * Reads a V8 CPU profile (as BENCH_CPU_PROF=<dir> makes them) and prints where the time went:
 * the functions with the most self time, and the total time (self and below) of every function
 * whose name or file matches a pattern. bench/README.md says how the /protected profile reads.
 *
 *   node --import tsx bench/profile.ts <file.cpuprofile> [top] [pattern]
 */
import { readFileSync } from 'node:fs'

interface Node {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[] }

const [file, topArg = '25', pattern] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: node --import tsx bench/profile.ts <file.cpuprofile> [top] [pattern]\n')
  process.exit(1)
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

const label = (node: Node): string => {
  const { functionName, url, lineNumber } = node.callFrame
  const where = url === '' ? '' : ` ${url.replace(/^.*\/(node_modules|lib|dist|bench|examples)\//, '$1/')}:${lineNumber + 1}`
  return `${functionName === '' ? '(anonymous)' : functionName}${where}`
}

const self = new Map<string, number>()
const total = new Map<string, number>()
let all = 0
for (const [i, id] of profile.samples.entries()) {
  const dt = profile.timeDeltas[i] ?? 0
  all += dt
  let node = byId.get(id)
  if (node === undefined) continue
  self.set(label(node), (self.get(label(node)) ?? 0) + dt)
  // Each function once per sample, however deep its recursion.
  const seen = new Set<string>()
  while (node !== undefined) {
    const name = label(node)
    if (!seen.has(name)) total.set(name, (total.get(name) ?? 0) + dt)
    seen.add(name)
    const up = parent.get(node.id)
    node = up === undefined ? undefined : byId.get(up)
  }
}

const share = (us: number): string => `${(100 * us / all).toFixed(1).padStart(5)} %`
const busy = all - (self.get('(idle)') ?? 0)
process.stdout.write(`${file}: ${(all / 1e6).toFixed(1)} s sampled, ${share(busy)} not idle\n\nself time:\n`)
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) process.stdout.write(`${share(us)}  ${name}\n`)
if (pattern !== undefined) {
  const re = new RegExp(pattern)
  process.stdout.write(`\ntotal time (self and below) of /${pattern}/:\n`)
  for (const [name, us] of [...total].filter(([name]) => re.test(name)).sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) process.stdout.write(`${share(us)}  ${name}\n`)
}
