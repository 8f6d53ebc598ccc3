/** Progress lines on stderr, with the seconds since the bench started; stdout is the report. */
const benchStart = performance.now()

export function log (line: string): void {
  process.stderr.write(`bench: ${((performance.now() - benchStart) / 1000).toFixed(1).padStart(5)} s  ${line}\n`)
}
