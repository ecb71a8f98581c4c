/**
 * 3. Polling storm: 200 pollers over 20 live tasks that finish after a few seconds, pollers polling on after that.
 * Counts upstream calls against client requests, for the gateway (defaults) and for plain pass-through.
 */
import { asCandidate, BENCH_KEY, cycling, startGateway, startUpstream, type Candidate } from '../lib/candidates.js'
import { Child } from '../lib/child.js'
import { load, median } from '../lib/load.js'
import { fmt, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'

const GATEWAY = 'gateway (POLL_CACHE_MS=1000)'
const PROXY = '@fastify/http-proxy pass-through'
const POLL_CACHE_MS = 1000

interface Round {
  requests: number
  upstreamCalls: number
  seconds: number
  /** tasks × (seconds ÷ POLL_CACHE_MS) + tasks */
  bound: number
  statusCodes: Record<string, number>
  errors: number
}

export async function pollingStorm(s: Settings): Promise<ScenarioReport> {
  const { pollers, tasks, seconds, rounds, stepMs } = s.storm
  const stop: Child[] = []
  try {
    const upstream = await startUpstream('upstream', { stepMs })
    stop.push(upstream)
    const [gateway, proxy] = await Promise.all([
      startGateway('gateway', upstream, { LOG_LEVEL: 'warn', POLL_CACHE_MS: String(POLL_CACHE_MS) }),
      Child.start('passthrough', 'passthrough', { arg: { upstream: upstream.url, apiKey: BENCH_KEY } })
    ])
    stop.push(gateway, proxy)
    const candidates: Candidate[] = [asCandidate(GATEWAY, gateway), asCandidate(PROXY, proxy)]

    const runs = new Map<string, Round[]>(candidates.map((c) => [c.name, []]))
    for (let r = 0; r < rounds; r++) {
      for (const c of r % 2 === 0 ? candidates : [...candidates].reverse()) {
        // fresh tasks for every run: they start live and finish a few seconds in
        const ids = await upstream.call<string[]>('live', { n: tasks, outcome: 'SUCCESS' })
        const before = await upstream.call<number>('fetches')
        const m = await load(c, { connections: pollers, duration: seconds, requests: cycling(ids) })
        const upstreamCalls = (await upstream.call<number>('fetches')) - before
        runs.get(c.name)?.push({
          requests: m.requests,
          upstreamCalls,
          seconds: m.seconds,
          bound: Math.ceil(tasks * ((m.seconds * 1000) / POLL_CACHE_MS) + tasks),
          statusCodes: m.statusCodes,
          errors: m.errors + m.timeouts
        })
      }
    }
    if (gateway.exit !== undefined) throw new Error(`the gateway exited during the storm${gateway.tail()}`)

    const med = (name: string, f: (x: Round) => number): number => median((runs.get(name) as Round[]).map(f))
    const rows = candidates.map((c) => [
      c.name,
      fmt.int(med(c.name, (x) => x.requests)),
      fmt.int(med(c.name, (x) => x.upstreamCalls)),
      (med(c.name, (x) => x.upstreamCalls) / tasks).toFixed(1),
      fmt.int(med(c.name, (x) => x.bound)),
      fmt.ratio(med(c.name, (x) => x.requests / Math.max(1, x.upstreamCalls)))
    ])
    const worst = Math.max(...(runs.get(GATEWAY) as Round[]).map((x) => x.upstreamCalls / x.bound))
    const worstRound = (runs.get(GATEWAY) as Round[]).reduce((a, b) => (b.upstreamCalls / b.bound > a.upstreamCalls / a.bound ? b : a))
    return {
      id: 'storm',
      title: '3. Polling storm',
      setup:
        `${pollers} pollers (connections, polling as fast as answers come) over ${tasks} live tasks that finish ` +
        `${((2 + 0.7) * stepMs) / 1000}–${((2 + 2) * stepMs) / 1000} s in; pollers go on for ${seconds} s. ` +
        `${rounds} round(s), fresh tasks every run, medians. Gateway: defaults (POLL_CACHE_MS=${POLL_CACHE_MS}) except LOG_LEVEL=warn.`,
      table: { head: ['candidate', 'client requests', 'upstream calls', 'calls per task', `bound ${tasks}×(s÷${POLL_CACHE_MS / 1000}s)+${tasks}`, 'requests per upstream call'], rows },
      checks: [
        {
          name: 'gateway upstream calls (worst round)',
          value: `${fmt.int(worstRound.upstreamCalls)} of ${fmt.int(worstRound.bound)}`,
          goal: `≤ ${tasks} × (seconds ÷ POLL_CACHE_MS) + ${tasks}`,
          met: worst <= 1
        }
      ],
      notes: [],
      data: { pollers, tasks, seconds, pollCacheMs: POLL_CACHE_MS, rounds: Object.fromEntries(runs) }
    }
  } finally {
    for (const c of stop.reverse()) await c.stop().catch(() => undefined)
  }
}
