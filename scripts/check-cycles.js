// Fails when lib/ has an import cycle: dependencies must point one way (CONTRIBUTING.md, "Code
// layout"). TypeScript itself reads every file's imports (type-only ones count too: a cycle of
// types is a cycle of design) and resolves them; this script only walks the graph.
// madge would do the same, but its dependency tree refuses TypeScript 6 as a peer.
import ts from 'typescript'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..', 'lib')
const compilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext }

const files = readdirSync(root, { recursive: true }).filter((f) => f.endsWith('.ts')).map((f) => join(root, f))
const graph = new Map(files.map((file) => {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
  const targets = importedFiles
    .map(({ fileName }) => ts.resolveModuleName(fileName, file, compilerOptions, ts.sys).resolvedModule?.resolvedFileName)
    .filter((target) => target !== undefined && target.startsWith(root + '/') && !target.endsWith('.d.ts'))
  return [file, targets]
}))

// Depth-first search; a file met again while still on the path closes a cycle.
const state = new Map()
const cycles = []
function visit (file, path) {
  state.set(file, 'open')
  for (const target of graph.get(file) ?? []) {
    if (state.get(target) === 'open') cycles.push([...path.slice(path.indexOf(target)), target])
    else if (!state.has(target)) visit(target, [...path, target])
  }
  state.set(file, 'done')
}
for (const file of files) if (!state.has(file)) visit(file, [file])

if (cycles.length > 0) {
  for (const cycle of cycles) console.error(`import cycle: ${cycle.map((f) => relative(root, f)).join(' -> ')}`)
  process.exitCode = 1
} else {
  console.log(`no import cycle among ${files.length} files in lib/`)
}
