/**
 * 4. Memory: the gateway's RSS idle and with N cached finished tasks (~3 KB bodies), after a full GC;
 * RSS growth per cached body byte.
 */
import { cycling, metric, startGateway, startUpstream } from '../lib/candidates.js'
import type { Child } from '../lib/child.js'
import { load } from '../lib/load.js'
import { fmt, type Check, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'
import type { MemoryFacts } from '../servers/ipc.js'

/** tasks cached before "idle" is measured, so code paths, JIT and pools are warm and not counted as cache */
const WARM_TASKS = 100
const GOAL = 1.3

interface Point {
  label: string
  entries: number
  cacheBytes: number
  memory: MemoryFacts
}

export async function memory(s: Settings): Promise<ScenarioReport> {
  const [small, large] = s.memory.counts
  const warmRequests = Math.min(large, 20_000)
  const stop: Child[] = []
  try {
    const upstream = await startUpstream('upstream')
    stop.push(upstream)
    const ids = await upstream.call<string[]>('finished', { n: large, bodyBytes: s.memory.bodyBytes })
    // large enough to hold every task: this scenario measures what a cached byte costs, not eviction
    const maxBytes = String(Math.max(134217728, 2 * large * s.memory.bodyBytes))
    const gateway = await startGateway('gateway', upstream, { LOG_LEVEL: 'warn', CACHE_MAX_BYTES: maxBytes })
    stop.push(gateway)

    const fill = async (from: number, to: number): Promise<void> => {
      await load({ url: gateway.url, cpuSeconds: () => undefined }, { connections: 16, duration: 600, amount: to - from, requests: cycling(ids.slice(from, to)) })
    }
    const point = async (label: string): Promise<Point> => ({
      label,
      entries: await metric(gateway, 'mj_gateway_cache_entries'),
      cacheBytes: await metric(gateway, 'mj_gateway_cache_size_bytes'),
      memory: await gateway.call<MemoryFacts>('memory')
    })

    await fill(0, WARM_TASKS)
    // Serving traffic grows RSS by itself (socket buffers, malloc arenas, JIT code), cache or not. "Idle" is
    // measured after as much traffic as a fill, on requests that are never cached (unknown ids, 404), so the
    // per-byte figure holds what cached bytes cost and not what the fill's traffic left behind.
    const unknown = Array.from({ length: warmRequests }, (_, i) => `9${String(1e15 + i)}`)
    await load({ url: gateway.url, cpuSeconds: () => undefined }, { connections: 16, duration: 600, amount: unknown.length, requests: cycling(unknown) })
    await load({ url: gateway.url, cpuSeconds: () => undefined }, { connections: 16, duration: 1, requests: cycling(ids.slice(0, WARM_TASKS)) })
    const idle = await point(`idle (${WARM_TASKS} cached)`)
    await fill(WARM_TASKS, small)
    const p1 = await point(`${fmt.int(small)} cached`)
    await fill(small, large)
    const p2 = await point(`${fmt.int(large)} cached`)
    if (gateway.exit !== undefined) throw new Error(`the gateway exited${gateway.tail()}`)

    const perByte = (p: Point, from: Point = idle): number => (p.memory.rss - from.memory.rss) / (p.cacheBytes - from.cacheBytes)
    const rows = [idle, p1, p2].map((p) => [
      p.label,
      fmt.int(p.entries),
      fmt.mib(p.cacheBytes),
      fmt.mib(p.memory.rss),
      fmt.mib(p.memory.heapTotal),
      fmt.mib(p.memory.heapUsed),
      fmt.mib(p.memory.arrayBuffers),
      p === idle ? '–' : (perByte(p)).toFixed(2)
    ])
    const checks: Check[] = [p1, p2].map((p) => ({
      name: `RSS growth per cached body byte, ${p.label}`,
      value: perByte(p).toFixed(2),
      goal: `≤ ${GOAL}`,
      met: perByte(p) <= GOAL
    }))
    checks.push({ name: `marginal, ${p1.label} → ${p2.label}`, value: perByte(p2, p1).toFixed(2), goal: `≤ ${GOAL}`, met: perByte(p2, p1) <= GOAL })
    for (const p of [p1, p2]) {
      const expected = p === p1 ? small : large
      if (p.entries < expected) checks.push({ name: `entries held, ${p.label}`, value: fmt.int(p.entries), goal: fmt.int(expected), met: false })
    }
    return {
      id: 'memory',
      title: '4. Memory',
      setup:
        `The gateway (defaults except LOG_LEVEL=warn and CACHE_MAX_BYTES=${fmt.mib(Number(maxBytes))}, so nothing is evicted) fetches ` +
        `finished tasks of ~${s.memory.bodyBytes} B through its upstream client; RSS after a full GC. ` +
        `"Idle" follows ${fmt.int(warmRequests)} requests for unknown ids (404, never cached), so RSS that traffic itself leaves ` +
        'behind is not counted as cache. Growth per byte = (RSS − idle RSS) ÷ (cached body bytes − idle cached body bytes); ' +
        'the marginal figure compares the two fills, independent of any idle baseline.',
      table: { head: ['state', 'entries', 'cached body bytes', 'RSS', 'JS heap total', 'JS heap used', 'array buffers', 'RSS growth per body byte'], rows },
      checks,
      notes: [],
      data: { warmRequests, points: [idle, p1, p2], perByte: { [small]: perByte(p1), [large]: perByte(p2), marginal: perByte(p2, p1) } }
    }
  } finally {
    for (const c of stop.reverse()) await c.stop().catch(() => undefined)
  }
}
