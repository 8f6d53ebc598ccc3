/*
 * A small SVG chart of a run's targets, written next to its JSON: one bar per target, drawn as
 * the figure over its bound, so that every bound sits on the same vertical line. A target of
 * "at least" passes with its bar past the line, one of "at most" with its bar short of it; green
 * passes, red fails. Hand-written SVG: no browser or package is needed to make it.
 */
import type { Results, Target } from './results.js'

const WIDTH = 760
const LABEL = 300
const BAR_AREA = 300
/** The scale: the bound at the middle of the bar area, twice the bound at its end. */
const SCALE_MAX = 2
const ROW = 26
const TOP = 48

const escapeXml = (text: string): string => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`)

function bar (target: Target, i: number): string {
  const y = TOP + i * ROW
  const share = Number.isFinite(target.value) ? target.value / target.limit : 0
  const width = Math.max(1, Math.min(SCALE_MAX, share) / SCALE_MAX * BAR_AREA)
  const color = target.ok ? '#2e7d32' : '#c62828'
  const figure = Number.isFinite(target.value) ? target.value.toFixed(2) : '–'
  return [
    `<text x="${LABEL - 8}" y="${y + 15}" text-anchor="end">${escapeXml(target.name)}</text>`,
    `<rect x="${LABEL}" y="${y + 4}" width="${width.toFixed(1)}" height="${ROW - 10}" fill="${color}"/>`,
    `<text x="${LABEL + BAR_AREA + 8}" y="${y + 15}">${figure} (${escapeXml(target.op.replace('>=', '≥').replace('<=', '≤'))} ${target.limit}) ${target.ok ? 'PASS' : 'FAIL'}</text>`
  ].join('')
}

/** The chart of `results.targets` as an SVG document. */
export function chart (results: Results): string {
  const list = results.targets
  const height = TOP + list.length * ROW + 16
  const line = LABEL + BAR_AREA / SCALE_MAX
  const m = results.machine
  const title = `fastify-token-auth bench${results.smoke ? ' (smoke run: the figures mean nothing)' : ''}`
  const subtitle = `${String(m.cpus)} CPUs, ${String(m.node)}, load ${(m.loadAverageAtStart as number[]).join(' ')}, ${String(m.date)}; each bar is its figure over its bound`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="8" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="8" y="36" fill="#555">${escapeXml(subtitle)}</text>`,
    ...list.map(bar),
    `<line x1="${line}" y1="${TOP}" x2="${line}" y2="${height - 12}" stroke="#000" stroke-dasharray="4 3"/>`,
    `<text x="${line}" y="${height - 2}" text-anchor="middle" fill="#555">bound</text>`,
    '</svg>',
    ''
  ].join('\n')
}
