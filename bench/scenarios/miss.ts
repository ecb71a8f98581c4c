/**
 * 2. Miss path: live tasks with POLL_CACHE_MS=0 (every response a fresh upstream answer) through the gateway,
 * against @fastify/http-proxy passing the same requests through with the key injected.
 */
import { asCandidate, BENCH_KEY, cycling, interleaved, startGateway, startUpstream, type Candidate } from '../lib/candidates.js'
import { Child } from '../lib/child.js'
import type { Summary } from '../lib/load.js'
import { fmt, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'
import { pinningNote } from '../lib/cpus.js'
import { pairedRatio } from '../lib/candidates.js'

const GATEWAY = 'gateway (POLL_CACHE_MS=0)'
const PROXY = '@fastify/http-proxy pass-through'

export async function missPath(s: Settings): Promise<ScenarioReport> {
  const stop: Child[] = []
  try {
    const upstream = await startUpstream('upstream', { latencyMs: s.miss.upstreamLatencyMs, latencyJitterMs: s.miss.upstreamJitterMs })
    stop.push(upstream)
    const ids = await upstream.call<string[]>('live', { n: s.miss.tasks, outcome: 'never' })
    const env = { LOG_LEVEL: 'warn', POLL_CACHE_MS: '0' }
    const [gateway, proxy, base] = await Promise.all([
      startGateway('gateway', upstream, env),
      Child.start('passthrough', 'passthrough', { arg: { upstream: upstream.url, apiKey: BENCH_KEY } }),
      s.baseline === undefined ? undefined : startGateway('gateway-baseline', upstream, env, { root: s.baseline })
    ])
    stop.push(gateway, proxy)
    const candidates: Candidate[] = [asCandidate(GATEWAY, gateway), asCandidate(PROXY, proxy)]
    if (base !== undefined) {
      stop.push(base)
      candidates.push(asCandidate(`baseline ${GATEWAY}`, base))
    }
    const upstreamCalls = new Map<string, { calls: number; requests: number }>(candidates.map((c) => [c.name, { calls: 0, requests: 0 }]))
    let before = 0
    const results = await interleaved(candidates, {
        rounds: s.rounds,
        warmupSeconds: s.warmupSeconds,
        seconds: s.seconds,
        load: { connections: s.miss.pollers, requests: cycling(ids) },
        before: async () => {
          before = await upstream.call<number>('fetches')
        },
        after: async (c, m) => {
          const u = upstreamCalls.get(c.name) as { calls: number; requests: number }
          u.calls += (await upstream.call<number>('fetches')) - before
          u.requests += m.requests
        }
    })
    if (gateway.exit !== undefined) throw new Error(`the gateway exited during the run${gateway.tail()}`)
    const g = results.get(GATEWAY) as Summary
    const p = results.get(PROXY) as Summary
    const rows = candidates.map((c) => {
      const x = results.get(c.name) as Summary
      const u = upstreamCalls.get(c.name) as { calls: number; requests: number }
      return [c.name, fmt.int(x.rps), fmt.ms(x.p50), fmt.ms(x.p99), fmt.pct(x.serverCpu), fmt.ratio(pairedRatio(x, p)), fmt.int(u.requests), fmt.int(u.calls), fmt.int(x.errors + Object.entries(x.statusCodes).filter(([k]) => k !== '200').reduce((n, [, v]) => n + v, 0))]
    })
    const ratio = pairedRatio(g, p)
    return {
      id: 'miss',
      title: '2. Miss path (live tasks, POLL_CACHE_MS=0)',
      setup:
        `${ids.length} live tasks (IN_PROGRESS), ${s.miss.pollers} pollers (connections) asking for them in turn, the polling storm's shape; ` +
        `the simulated upstream answers after ${s.miss.upstreamLatencyMs} ± ${s.miss.upstreamJitterMs} ms (uniform). ` +
        `${s.rounds} interleaved rounds of ${s.seconds} s; rps and latency are medians, the ratio the median of the rounds' own ratios. ` +
        'Gateway: defaults except POLL_CACHE_MS=0, LOG_LEVEL=warn; every response is a fresh upstream answer, and polls of a task ' +
        `that arrive while its upstream call is in flight share that call (single-flight). ${pinningNote()}`,
      table: { head: ['candidate', 'rps', 'p50 ms', 'p99 ms', 'srv CPU', 'rps ÷ pass-through', 'client requests', 'upstream calls', 'non-200'], rows },
      checks: [{ name: 'gateway / pass-through, rps', value: fmt.ratio(ratio), goal: '≥ 1.50×', met: ratio === undefined ? undefined : ratio >= 1.5 }],
      notes: [],
      data: {
        tasks: ids.length,
        pollers: s.miss.pollers,
        upstreamLatencyMs: s.miss.upstreamLatencyMs,
        upstreamJitterMs: s.miss.upstreamJitterMs,
        candidates: Object.fromEntries(candidates.map((c) => [c.name, { ...results.get(c.name), ...upstreamCalls.get(c.name) }]))
      }
    }
  } finally {
    for (const c of stop.reverse()) await c.stop().catch(() => undefined)
  }
}
