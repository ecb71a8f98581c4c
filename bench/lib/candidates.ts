/** Starting the processes a scenario compares, and running them in interleaved rounds. */
import type autocannon from 'autocannon'
import { Child } from './child.js'
import { load, median, summarize, type LoadOptions, type Measurement, type Summary, type Target } from './load.js'
import type { UpstreamArg } from '../servers/upstream.js'
import type { GatewayArg } from '../servers/gateway.js'

/** the simulated upstream's key; the gateway injects it, clients never send it */
export const BENCH_KEY = 'bench-upstream-key'

export function startUpstream(name: string, arg: Omit<UpstreamArg, 'apiKey'> = {}): Promise<Child> {
  return Child.start(name, 'upstream', { arg: { apiKey: BENCH_KEY, ...arg } satisfies UpstreamArg, role: 'outside' })
}

/**
 * RATE_LIMIT_PER_MINUTE for every gateway the bench starts: all load comes from one address, which the default
 * 600/min would refuse within a second. The limiter stays on and does the same work per request (client key,
 * counter, x-ratelimit-* headers) as for any client under its limit.
 */
export const BENCH_RATE_LIMIT = '1000000000'

/** The gateway with the default configuration, except RATE_LIMIT_PER_MINUTE (see above) and what `env` says. */
export function startGateway(
  name: string,
  upstream: Child,
  env: Record<string, string>,
  opts: { httpMetrics?: boolean; execArgv?: string[]; root?: string } = {}
): Promise<Child> {
  const arg: GatewayArg = {
    env: { UPSTREAM_BASE_URL: upstream.url, UPSTREAM_API_KEY: BENCH_KEY, RATE_LIMIT_PER_MINUTE: BENCH_RATE_LIMIT, ...env },
    ...(opts.httpMetrics === false ? { httpMetrics: false } : {})
  }
  return Child.start(name, 'gateway', {
    arg,
    ...(opts.execArgv === undefined ? {} : { execArgv: opts.execArgv }),
    ...(opts.root === undefined ? {} : { root: opts.root })
  })
}

/** GET requests for these task ids, in turn across all connections (request k asks for ids[k mod n]). */
export function cycling(ids: readonly string[]): autocannon.Request[] {
  const paths = ids.map((id) => `/mj/task/${id}/fetch`)
  let k = 0
  return [
    {
      method: 'GET',
      setupRequest(req) {
        req.path = paths[k++ % paths.length] as string
        return req
      }
    }
  ]
}

/**
 * GET requests for these task ids, each connection going through the whole list in order. autocannon builds
 * each request once, so the load generator spends less of its CPU per request than with cycling() (which builds
 * every request anew): where which connection asks for which id does not matter (cache hits), it can drive harder.
 */
export function prebuilt(ids: readonly string[]): autocannon.Request[] {
  return ids.map((id) => ({ method: 'GET', path: `/mj/task/${id}/fetch` }))
}

/**
 * a ÷ b as the median of the rounds' own ratios: each round runs every candidate back to back, so the ratio of a
 * round compares runs seconds apart, and the machine's speed drifting during the run (it does, by 2x) cancels out
 */
export function pairedRatio(a: Summary, b: Summary, of: (r: Summary['perRound'][number]) => number | undefined = (r) => r.rps): number | undefined {
  const ratios: number[] = []
  for (let i = 0; i < a.perRound.length; i++) {
    const x = of(a.perRound[i] as Summary['perRound'][number])
    const y = b.perRound[i] === undefined ? undefined : of(b.perRound[i] as Summary['perRound'][number])
    if (x === undefined || y === undefined) return undefined
    ratios.push(x / y)
  }
  return median(ratios)
}

export interface Candidate extends Target {
  name: string
  /** after its run: a full GC now, so the garbage of its run is not collected during the next candidate's run on the same CPU */
  settle?(): Promise<void>
}

export interface RoundsOptions {
  rounds: number
  warmupSeconds: number
  seconds: number
  load: Omit<LoadOptions, 'duration'>
  /** called around each measured run, e.g. to count upstream calls */
  before?: (c: Candidate) => Promise<void> | void
  after?: (c: Candidate, m: Measurement) => Promise<void> | void
}

/**
 * Warm-up, then `rounds` rounds; each round runs every candidate once, the order rotating from round to
 * round, so drift on a shared machine (thermal, noisy neighbours) spreads over all candidates alike.
 */
export async function interleaved(candidates: readonly Candidate[], opts: RoundsOptions): Promise<Map<string, Summary>> {
  for (const c of candidates) {
    await load(c, { ...opts.load, duration: opts.warmupSeconds })
    await c.settle?.()
  }
  const runs = new Map<string, Measurement[]>(candidates.map((c) => [c.name, []]))
  for (let r = 0; r < opts.rounds; r++) {
    const order = candidates.map((_, i) => candidates[(i + r) % candidates.length] as Candidate)
    for (const c of order) {
      await opts.before?.(c)
      const m = await load(c, { ...opts.load, duration: opts.seconds })
      runs.get(c.name)?.push(m)
      await opts.after?.(c, m)
      await c.settle?.()
    }
  }
  return new Map([...runs].map(([name, ms]) => [name, summarize(ms)]))
}

export function asCandidate(name: string, child: Child): Candidate {
  return { name, url: child.url, cpuSeconds: () => child.cpuSeconds(), settle: () => child.call('memory').then(() => undefined) }
}

/** One GET, for sanity checks (status, headers, body) before measuring. */
export async function probe(url: string): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(url)
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) }
}

/** A value of the gateway's /metrics text, e.g. metric('mj_gateway_cache_size_bytes'). */
export async function metric(gateway: Child, name: string): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  if (line === undefined) throw new Error(`no ${name} in /metrics`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}
