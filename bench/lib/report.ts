/** What a scenario hands back, and how it is shown: aligned tables on the console, Markdown for the docs. */
export interface Check {
  name: string
  /** the figure as shown, e.g. "0.97×" */
  value: string
  goal: string
  /** undefined: no goal, or not measurable in this run */
  met: boolean | undefined
}

export interface Table {
  head: string[]
  rows: string[][]
}

export interface ScenarioReport {
  id: string
  title: string
  /** one paragraph: what was measured, how */
  setup: string
  table: Table
  checks: Check[]
  notes: string[]
  /** the raw figures, for bench/results/*.json */
  data: unknown
}

export const fmt = {
  int: (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US')),
  ms: (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '–' : n < 10 ? n.toFixed(2) : n.toFixed(1)),
  ratio: (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '–' : `${n.toFixed(2)}×`),
  pct: (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '–' : `${(n * 100).toFixed(1)} %`),
  mib: (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '–' : `${(n / 1048576).toFixed(1)} MiB`)
}

export function verdict(met: boolean | undefined): string {
  return met === undefined ? '–' : met ? 'met' : 'MISSED'
}

function align(t: Table): string {
  const widths = t.head.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ')
  return [line(t.head), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)].join('\n')
}

function markdown(t: Table): string {
  const row = (cells: string[]): string => `| ${cells.join(' | ')} |`
  return [row(t.head), row(t.head.map((_, i) => (i === 0 ? '---' : '---:'))), ...t.rows.map(row)].join('\n')
}

function checksTable(checks: Check[]): Table {
  return { head: ['goal check', 'measured', 'goal', 'verdict'], rows: checks.map((c) => [c.name, c.value, c.goal, verdict(c.met)]) }
}

export function consoleReport(r: ScenarioReport): string {
  const parts = [`\n== ${r.title}`, r.setup, '', align(r.table)]
  if (r.checks.length > 0) parts.push('', align(checksTable(r.checks)))
  for (const n of r.notes) parts.push(`note: ${n}`)
  return parts.join('\n')
}

export function markdownReport(r: ScenarioReport): string {
  const parts = [`### ${r.title}`, '', r.setup, '', markdown(r.table)]
  if (r.checks.length > 0) parts.push('', markdown(checksTable(r.checks)))
  if (r.notes.length > 0) parts.push('', ...r.notes.map((n) => `- ${n}`))
  return parts.join('\n')
}
