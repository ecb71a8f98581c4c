/**
 * 1. Hit path: the gateway answering from a warm cache, against bare Fastify sending the same response
 * from a Map (the ceiling) and nginx proxy_cache (when installed), all in one run, rounds interleaved.
 */
import { Child } from '../lib/child.js'
import { asCandidate, BENCH_KEY, cycling, pairedRatio, prebuilt, interleaved, metric, probe, startGateway, startUpstream, type Candidate } from '../lib/candidates.js'
import { load, type Summary } from '../lib/load.js'
import { findNginx, startNginx, type Nginx } from '../lib/nginx.js'
import { summarizeProfile } from '../lib/profile.js'
import { fmt, type Check, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'
import { pinningNote } from '../lib/cpus.js'

const WARN = { LOG_LEVEL: 'warn' }
const LANE_OFF = 'gateway HIT_LANE=off'

export async function hitPath(s: Settings, resultsDir: URL): Promise<ScenarioReport> {
  const stop: Array<{ stop(): Promise<void> }> = []
  try {
    const upstream = await startUpstream('upstream')
    stop.push(upstream)
    const ids = await upstream.call<string[]>('finished', { n: s.hit.tasks, bodyBytes: s.hit.bodyBytes })

    const profileArgs = (name: string): string[] | undefined =>
      s.profile ? ['--cpu-prof', `--cpu-prof-dir=${new URL('.', resultsDir).pathname}`, `--cpu-prof-name=${name}-hit.cpuprofile`] : undefined
    const gwProfile = profileArgs('gateway')
    const ceilingProfile = profileArgs('ceiling')
    // start them side by side: process start-up is most of a quick run
    const [gw, infoGw, noMetrics, laneOff, ceiling, base, baseInfo] = await Promise.all([
      startGateway('gateway', upstream, WARN, gwProfile === undefined ? {} : { execArgv: gwProfile }),
      s.profile ? undefined : startGateway('gateway-info', upstream, {}),
      s.profile ? undefined : startGateway('gateway-nometrics', upstream, WARN, { httpMetrics: false }),
      s.profile ? undefined : startGateway('gateway-lane-off', upstream, { ...WARN, HIT_LANE: 'off' }),
      Child.start('ceiling', 'ceiling', ceilingProfile === undefined ? {} : { execArgv: ceilingProfile }),
      s.baseline === undefined ? undefined : startGateway('gateway-baseline', upstream, WARN, { root: s.baseline }),
      s.baseline === undefined || s.profile ? undefined : startGateway('gateway-baseline-info', upstream, { LOG_LEVEL: 'info' }, { root: s.baseline })
    ])
    const gateways: Array<[string, Child]> = [['gateway', gw]]
    if (infoGw !== undefined) gateways.push(['gateway LOG_LEVEL=info', infoGw])
    if (noMetrics !== undefined) gateways.push(['gateway, metrics hook off', noMetrics])
    if (laneOff !== undefined) gateways.push([LANE_OFF, laneOff])
    if (base !== undefined) gateways.push(['baseline gateway', base])
    if (baseInfo !== undefined) gateways.push(['baseline gateway LOG_LEVEL=info', baseInfo])
    for (const [, g] of gateways) stop.push(g)
    stop.push(ceiling)
    const loaded = await ceiling.call<{ entries: number; bytes: number }>('load', { upstream: upstream.url, apiKey: BENCH_KEY, ids })

    const notes: string[] = []
    let nginx: Nginx | undefined
    const nginxBin = findNginx()
    if (s.profile) {
      // profiling: only the gateway and its ceiling
    } else if (nginxBin === undefined) {
      notes.push('nginx is not installed: its row is skipped (apt-get install nginx to include it).')
    } else {
      nginx = await startNginx(nginxBin, upstream.port, BENCH_KEY)
      stop.push(nginx)
    }

    const candidates: Candidate[] = gateways.map(([name, child]) => asCandidate(name, child))
    candidates.push(asCandidate('bare Fastify (ceiling)', ceiling))
    if (nginx !== undefined) candidates.push({ name: `nginx ${nginx.version} proxy_cache`, url: nginx.url, cpuSeconds: nginx.cpuSeconds })

    // Warm every cache with each id once, then prove each candidate answers the same bytes from cache.
    const expected = (await probe(`${ceiling.url}/mj/task/${ids[0]}/fetch`)).body
    for (const c of candidates) {
      await load(c, { connections: 8, duration: 60, amount: ids.length, requests: cycling(ids) })
      const p = await probe(`${c.url}/mj/task/${ids[0]}/fetch`)
      if (p.status !== 200 || !p.body.equals(expected)) throw new Error(`${c.name} does not answer the expected body (HTTP ${p.status})`)
      const xcache = p.headers.get('x-cache')
      if (xcache !== 'HIT') throw new Error(`${c.name} answered x-cache ${xcache}, not HIT, after warm-up`)
    }
    for (const [name, g] of gateways) {
      const entries = await metric(g, 'mj_gateway_cache_entries')
      if (entries < ids.length) throw new Error(`${name} holds ${entries} entries, expected ${ids.length}`)
    }

    const results = await interleaved(candidates, {
      rounds: s.rounds,
      warmupSeconds: s.warmupSeconds,
      seconds: s.seconds,
      load: { connections: s.connections, requests: prebuilt(ids) }
    })
    for (const [name, g] of gateways) if (g.exit !== undefined) throw new Error(`${name} exited during the run${g.tail()}`)

    const get = (name: string): Summary | undefined => results.get(name)
    const ceilingSummary = get('bare Fastify (ceiling)') as Summary
    const paired = (name: string, of: (r: Summary['perRound'][number]) => number | undefined): number | undefined => {
      const x = get(name)
      return x === undefined ? undefined : pairedRatio(x, ceilingSummary, of)
    }
    const ratio = (name: string): number | undefined => paired(name, (r) => r.rps)
    const cpuRatio = (name: string): number | undefined => paired(name, (r) => r.rpsPerCpu)
    const rows = candidates.map((c) => {
      const x = get(c.name) as Summary
      const non200 = Object.entries(x.statusCodes).filter(([code]) => code !== '200').reduce((n, [, v]) => n + v, 0) + x.errors
      return [c.name, fmt.int(x.rps), fmt.ms(x.p50), fmt.ms(x.p99), fmt.pct(x.serverCpu), fmt.int(x.rpsPerCpu), fmt.ratio(ratio(c.name)), fmt.ratio(cpuRatio(c.name)), fmt.int(non200)]
    })

    const gwRatio = ratio('gateway')
    const checks: Check[] = [
      { name: 'gateway (LOG_LEVEL=warn) / ceiling, rps', value: fmt.ratio(gwRatio), goal: '≥ 0.95×', met: gwRatio === undefined ? undefined : gwRatio >= 0.95 }
    ]
    const info = ratio('gateway LOG_LEVEL=info')
    if (info !== undefined) checks.push({ name: 'gateway (LOG_LEVEL=info) / ceiling, rps', value: fmt.ratio(info), goal: '≥ 0.80×', met: info >= 0.8 })
    const off = get('gateway, metrics hook off')
    if (off !== undefined) {
      const cost = 1 - (ratio('gateway') as number) / (ratio('gateway, metrics hook off') as number)
      // two candidates that differ by a few plain-number increments: the figure is within this VM's run-to-run noise
      checks.push({ name: 'cost of the http metrics hook, rps', value: fmt.pct(cost), goal: 'for information (noise ±5 %)', met: undefined })
    }
    const laneOffRatio = ratio(LANE_OFF)
    if (gwRatio !== undefined && laneOffRatio !== undefined) {
      // the same build with every request through Fastify: what the hit lane is worth
      checks.push({ name: 'the hit lane\'s worth: gateway ÷ gateway HIT_LANE=off, rps', value: fmt.ratio(gwRatio / laneOffRatio), goal: '> 1× (for information)', met: undefined })
    }
    const ngRatio = nginx === undefined ? undefined : ratio(candidates[candidates.length - 1]?.name ?? '')
    if (ngRatio !== undefined) {
      checks.push({ name: 'gateway / nginx proxy_cache, rps', value: fmt.ratio((gwRatio as number) / ngRatio), goal: 'for information', met: undefined })
    }
    if (s.profile) {
      await gw.stop()
      await ceiling.stop()
      for (const who of ['gateway', 'ceiling']) {
        const file = new URL(`${who}-hit.cpuprofile`, resultsDir).pathname
        const prof = summarizeProfile(file)
        notes.push(`CPU profile of the ${who} (its whole life, warm-up included): ${file}`)
        notes.push(`${who} self time by package: ${prof.packages.map((l) => `${l.name} ${fmt.pct(l.share)}`).join(', ')}`)
        notes.push(`${who} self time by function:\n${prof.functions.map((l) => `  ${fmt.pct(l.share).padStart(7)}  ${l.name}`).join('\n')}`)
      }
    }
    const data = {
      tasks: ids.length,
      bodyBytes: Math.round(loaded.bytes / loaded.entries),
      connections: s.connections,
      rounds: s.rounds,
      seconds: s.seconds,
      candidates: Object.fromEntries(candidates.map((c) => [c.name, { ...get(c.name), ratioToCeiling: ratio(c.name), cpuRatioToCeiling: cpuRatio(c.name) }]))
    }
    return {
      id: 'hit',
      title: '1. Hit path (warm cache)',
      setup:
        `${ids.length} finished tasks of ~${data.bodyBytes} B, requests cycling over all ids, ${s.connections} connections, ` +
        `${s.rounds} interleaved rounds of ${s.seconds} s after ${s.warmupSeconds} s warm-up; rps and latency are medians over the rounds, ` +
        'ratios the median of the rounds\' own ratios (a round runs every candidate back to back). ' +
        `${pinningNote()} ` +
        'Gateway: default configuration (metrics on) except LOG_LEVEL. Ceiling: bare Fastify sending the same body and headers from a Map. ' +
        'srv CPU = share of one core the server used; req/CPU-s = requests per server CPU-second (independent of the load generator).',
      table: { head: ['candidate', 'rps', 'p50 ms', 'p99 ms', 'srv CPU', 'req/CPU-s', 'rps ÷ ceiling', 'req/CPU ÷ ceiling', 'non-200'], rows },
      checks,
      notes,
      data
    }
  } finally {
    for (const p of stop.reverse()) await p.stop().catch(() => undefined)
  }
}
