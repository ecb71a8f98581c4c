/**
 * 5. Fault soak: mixed hits, misses and live polls through the gateway (default configuration) while the
 * upstream answers 10 % 5xx, hangs 5 % and resets 2 %. Counts crashes, statuses outside docs/errors.md, RSS growth.
 */
import type autocannon from 'autocannon'
import { startGateway, startUpstream, cycling } from '../lib/candidates.js'
import type { Child } from '../lib/child.js'
import { load } from '../lib/load.js'
import { fmt, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'
import type { MemoryFacts } from '../servers/ipc.js'
import type { Faults } from '../servers/upstream.js'

const FAULTS: Faults = { error5xx: 0.1, hang: 0.05, reset: 0.02 }
/** docs/http-api.md §2 and docs/errors.md §2: every status GET /mj/task/:id/fetch may answer */
const CONTRACT_STATUSES = new Set(['200', '304', '400', '401', '404', '429', '502', '504'])
const HIT_TASKS = 1000
const SHARE = { hit: 0.5, live: 0.3 } // the rest: misses (unknown ids, never cacheable)
const NEW_TASKS_EVERY_MS = 2000
const NEW_TASKS = 10
const LIVE_WINDOW = 60
const RSS_GOAL = 0.1

function mixed(hits: readonly string[], live: () => readonly string[]): autocannon.Request[] {
  let miss = 0
  return [
    {
      method: 'GET',
      setupRequest(req) {
        const roll = Math.random()
        let id: string
        if (roll < SHARE.hit) id = hits[Math.floor(Math.random() * hits.length)] as string
        else if (roll < SHARE.hit + SHARE.live) {
          const l = live()
          id = l[Math.floor(Math.random() * l.length)] as string
        } else id = `9${String(Date.now())}${String(++miss).padStart(6, '0')}`
        req.path = `/mj/task/${id}/fetch`
        return req
      }
    }
  ]
}

export async function faultSoak(s: Settings): Promise<ScenarioReport> {
  const seconds = s.soak.seconds
  const stop: Child[] = []
  const timers: NodeJS.Timeout[] = []
  try {
    const upstream = await startUpstream('upstream', { faults: FAULTS })
    stop.push(upstream)
    const gateway = await startGateway('gateway', upstream, {})
    stop.push(gateway)
    const hits = await upstream.call<string[]>('finished', { n: HIT_TASKS, bodyBytes: 3072 })
    let live = [...(await upstream.call<string[]>('live', { n: 20, outcome: 'never' })), ...(await upstream.call<string[]>('live', { n: NEW_TASKS }))]
    // warm: most finished tasks get cached despite the faults (a failed fetch is simply tried again later)
    await load({ url: gateway.url, cpuSeconds: () => undefined }, { connections: 32, duration: Math.min(10, Math.max(1, seconds / 5)), requests: cycling(hits), timeout: 30 })

    const samples: Array<{ t: number; rss: number }> = []
    const t0 = Date.now()
    const sample = async (): Promise<void> => {
      if (gateway.exit !== undefined) return
      const m = await gateway.call<MemoryFacts>('memory').catch(() => undefined)
      if (m !== undefined) samples.push({ t: (Date.now() - t0) / 1000, rss: m.rss })
    }
    await sample()
    timers.push(
      setInterval(() => {
        upstream
          .call<string[]>('live', { n: NEW_TASKS })
          .then((ids) => (live = [...live.slice(-LIVE_WINDOW), ...ids]))
          .catch(() => undefined)
      }, NEW_TASKS_EVERY_MS)
    )
    timers.push(setInterval(() => void sample(), Math.max(1000, (seconds * 1000) / 20)))

    const m = await load({ url: gateway.url, cpuSeconds: () => gateway.cpuSeconds() }, {
      connections: s.soak.connections,
      duration: seconds,
      requests: mixed(hits, () => live),
      timeout: 30
    })
    for (const t of timers) clearInterval(t)
    await sample()
    const crashed = gateway.exit !== undefined
    const faults = await upstream.call<Record<string, number>>('faults')

    const outside = Object.entries(m.statusCodes).filter(([code]) => !CONTRACT_STATUSES.has(code))
    const outsideCount = outside.reduce((n, [, v]) => n + v, 0)
    // the baseline: the first sample after a fifth of the run, when pools, caches and JIT have settled
    const base = samples.find((x) => x.t >= seconds / 5) ?? samples[0]
    const last = samples[samples.length - 1]
    const growth = base === undefined || last === undefined ? NaN : last.rss / base.rss - 1
    const statuses = Object.entries(m.statusCodes)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([code, n]) => `${code}: ${fmt.int(n)}`)
      .join(', ')
    return {
      id: 'soak',
      title: `5. Fault soak (${seconds} s)`,
      setup:
        `The gateway with the default configuration; ${s.soak.connections} connections; requests ${SHARE.hit * 100} % hits on ${HIT_TASKS} finished tasks, ` +
        `${SHARE.live * 100} % polls of live tasks (${NEW_TASKS} new every ${NEW_TASKS_EVERY_MS / 1000} s), the rest misses on unknown ids. ` +
        `The upstream answers ${FAULTS.error5xx * 100} % 5xx, hangs ${FAULTS.hang * 100} % (let go after 60 s), resets ${FAULTS.reset * 100} %.`,
      table: {
        head: ['requests', 'rps', 'p50 ms', 'p99 ms', 'statuses', 'client errors', 'upstream faults (5xx/hang/reset)', 'RSS start → end'],
        rows: [
          [
            fmt.int(m.requests),
            fmt.int(m.rps),
            fmt.ms(m.p50),
            fmt.ms(m.p99),
            statuses,
            fmt.int(m.errors + m.timeouts),
            `${fmt.int(faults.error5xx)}/${fmt.int(faults.hang)}/${fmt.int(faults.reset)}`,
            `${fmt.mib(base?.rss)} → ${fmt.mib(last?.rss)}`
          ]
        ]
      },
      checks: [
        { name: 'gateway crashes', value: crashed ? `1 (${gateway.exit?.code ?? gateway.exit?.signal})` : '0', goal: '0', met: !crashed },
        { name: 'responses outside the contract status set', value: fmt.int(outsideCount), goal: '0', met: outsideCount === 0 },
        { name: 'RSS growth over the run', value: fmt.pct(growth), goal: '< 10 %', met: growth < RSS_GOAL }
      ],
      notes: crashed ? [`the gateway crashed:${gateway.tail()}`] : [],
      data: { seconds, faults: FAULTS, faultCounts: faults, measurement: m, rssSamples: samples, crashed, outside: Object.fromEntries(outside) }
    }
  } finally {
    for (const t of timers) clearInterval(t)
    for (const c of stop.reverse()) await c.stop().catch(() => undefined)
  }
}
