/** Reads a V8 .cpuprofile and sums self time by function and by package, for the --profile summary. */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileLine {
  name: string
  share: number
}

function packageOf(url: string): string {
  if (url === '') return '(native / gc / idle)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url)
  }
  if (url.startsWith('node:')) return 'node core'
  const src = url.indexOf('/dist/')
  return src === -1 ? url : `gateway ${url.slice(src + '/dist/'.length).replace(/\.js$/, '')}`
}

export function summarizeProfile(path: string, top = 25): { functions: ProfileLine[]; packages: ProfileLine[] } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)))
  let total = 0
  const fn = new Map<string, number>()
  const pkg = new Map<string, number>()
  for (const [id, t] of self) {
    const node = byId.get(id)
    if (node === undefined) continue
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)' || functionName === '(program)') continue
    total += t
    const file = url.split('/').slice(-2).join('/')
    const name = `${functionName || '(anonymous)'} ${file === '' ? '' : `${file}:${lineNumber + 1}`}`.trim()
    fn.set(name, (fn.get(name) ?? 0) + t)
    const k = functionName === '(garbage collector)' ? '(garbage collector)' : packageOf(url)
    pkg.set(k, (pkg.get(k) ?? 0) + t)
  }
  const sorted = (m: Map<string, number>): ProfileLine[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, t]) => ({ name, share: t / total }))
  return { functions: sorted(fn), packages: sorted(pkg) }
}
