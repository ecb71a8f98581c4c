/** One autocannon run against one candidate, plus the candidate's own CPU use over the run. */
import autocannon from 'autocannon'
import { trace } from './trace.js'

export interface Target {
  url: string
  /** CPU seconds the server has used so far (all its processes); undefined when unknown */
  cpuSeconds(): number | undefined
}

export interface LoadOptions {
  connections: number
  /** seconds; ignored when `amount` is set */
  duration: number
  /** stop after this many requests instead */
  amount?: number
  /** the request list each connection cycles through */
  requests: autocannon.Request[]
  headers?: Record<string, string>
  /** seconds before autocannon gives up on one response */
  timeout?: number
}

export interface Measurement {
  rps: number
  /** latency, milliseconds */
  p50: number
  p99: number
  requests: number
  /** connection errors and timeouts seen by the client */
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
  /** share of one core the server used over the run (1 = a full core); undefined when unknown */
  serverCpu: number | undefined
  seconds: number
}

export async function load(target: Target, opts: LoadOptions): Promise<Measurement> {
  const cpu0 = target.cpuSeconds()
  const t0 = performance.now()
  const result = await autocannon({
    url: target.url,
    connections: opts.connections,
    duration: opts.duration,
    ...(opts.amount === undefined ? {} : { amount: opts.amount }),
    requests: opts.requests,
    ...(opts.headers === undefined ? {} : { headers: opts.headers }),
    timeout: opts.timeout ?? 30,
    pipelining: 1,
    // autocannon stops on a sample tick: a short tick lets short and amount-bound runs end on time
    sampleInt: 100
  })
  const seconds = (performance.now() - t0) / 1000
  trace(`${target.url}: ${result.latency.totalCount} requests in ${seconds.toFixed(1)} s`)
  const cpu1 = target.cpuSeconds()
  const statusCodes: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count
  const requests = result.latency.totalCount
  return {
    rps: requests / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    serverCpu: cpu0 === undefined || cpu1 === undefined ? undefined : (cpu1 - cpu0) / seconds,
    seconds
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** The per-round figures of one candidate, reduced to medians. */
export interface Summary {
  rps: number
  p50: number
  p99: number
  /** requests per server CPU-second: how much work one request costs, independent of the load generator */
  rpsPerCpu: number | undefined
  serverCpu: number | undefined
  rounds: number
  requests: number
  errors: number
  statusCodes: Record<string, number>
  /** every round's rps and req/CPU-s, to show the spread behind the medians */
  perRound: Array<{ rps: number; rpsPerCpu: number | undefined }>
}

export function summarize(runs: readonly Measurement[]): Summary {
  const statusCodes: Record<string, number> = {}
  for (const r of runs) for (const [c, n] of Object.entries(r.statusCodes)) statusCodes[c] = (statusCodes[c] ?? 0) + n
  const cpus = runs.map((r) => r.serverCpu).filter((c): c is number => c !== undefined && c > 0)
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    rpsPerCpu: cpus.length === runs.length ? median(runs.map((r) => r.rps / (r.serverCpu as number))) : undefined,
    serverCpu: cpus.length === runs.length ? median(cpus) : undefined,
    rounds: runs.length,
    requests: runs.reduce((n, r) => n + r.requests, 0),
    errors: runs.reduce((n, r) => n + r.errors + r.timeouts, 0),
    statusCodes,
    perRound: runs.map((r) => ({ rps: Math.round(r.rps), rpsPerCpu: r.serverCpu === undefined ? undefined : Math.round(r.rps / r.serverCpu) }))
  }
}
