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
    // warm the hit path too, with the same traffic shape as the other scenarios
    await load({ url: gateway.url, cpuSeconds: () => undefined }, { connections: 16, duration: 1, requests: cycling(ids.slice(0, WARM_TASKS)) })
    const idle = await point('idle (100 cached)')
    await fill(WARM_TASKS, small)
    const p1 = await point(`${fmt.int(small)} cached`)
    await fill(small, large)
    const p2 = await point(`${fmt.int(large)} cached`)
    if (gateway.exit !== undefined) throw new Error(`the gateway exited${gateway.tail()}`)

    const perByte = (p: Point): number => (p.memory.rss - idle.memory.rss) / (p.cacheBytes - idle.cacheBytes)
    const rows = [idle, p1, p2].map((p) => [
      p.label,
      fmt.int(p.entries),
      fmt.mib(p.cacheBytes),
      fmt.mib(p.memory.rss),
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
        `Growth per byte = (RSS − idle RSS) ÷ (cached body bytes − idle cached body bytes).`,
      table: { head: ['state', 'entries', 'cached body bytes', 'RSS', 'JS heap used', 'array buffers', 'RSS growth per body byte'], rows },
      checks,
      notes: [],
      data: { points: [idle, p1, p2], perByte: { [small]: perByte(p1), [large]: perByte(p2) } }
    }
  } finally {
    for (const c of stop.reverse()) await c.stop().catch(() => undefined)
  }
}
