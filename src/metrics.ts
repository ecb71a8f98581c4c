import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export type LookupResult = 'hit' | 'miss' | 'coalesced' | 'stale' | 'hit_shared'
export type UpstreamOutcome = 'ok' | 'http_4xx' | 'http_5xx' | 'timeout' | 'error'

const LOOKUP_RESULTS: readonly LookupResult[] = ['hit', 'miss', 'coalesced', 'stale']
const UPSTREAM_OUTCOMES: readonly UpstreamOutcome[] = ['ok', 'http_4xx', 'http_5xx', 'timeout', 'error']

// From a 50 µs cache hit to a 10 s upstream budget.
const HTTP_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const UPSTREAM_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export interface CacheGauges {
  entries(): number
  bytes(): number
}

/** Every instrument of CONTRACT §7, on a registry of its own (tests build several apps in one process). */
export class GatewayMetrics {
  readonly registry = new Registry()
  readonly httpRequests: Counter<'method' | 'route' | 'status_code'>
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>
  readonly cacheLookups: Counter<'result'>
  readonly cacheEvictions: Counter
  readonly upstreamRequests: Counter<'outcome'>
  readonly upstreamDuration: Histogram<'outcome'>
  readonly upstreamInflight: Gauge
  readonly redisUp: Gauge | undefined
  private readonly lookupChildren: Record<LookupResult, { inc(): void }>

  constructor(opts: { cache: CacheGauges; redis: boolean }) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.httpRequests = new Counter({
      name: 'mj_gateway_http_requests_total',
      help: 'HTTP requests answered by the gateway',
      labelNames: ['method', 'route', 'status_code'],
      registers
    })
    this.httpDuration = new Histogram({
      name: 'mj_gateway_http_request_duration_seconds',
      help: 'Time from request to response, as the gateway sees it',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS,
      registers
    })
    this.cacheLookups = new Counter({
      name: 'mj_gateway_cache_lookups_total',
      help: 'Task fetches by how the cache answered them',
      labelNames: ['result'],
      registers
    })
    const { cache } = opts
    new Gauge({
      name: 'mj_gateway_cache_entries',
      help: 'Entries in the in-process cache',
      registers,
      collect() {
        this.set(cache.entries())
      }
    })
    new Gauge({
      name: 'mj_gateway_cache_size_bytes',
      help: 'Body bytes held by the in-process cache',
      registers,
      collect() {
        this.set(cache.bytes())
      }
    })
    this.cacheEvictions = new Counter({
      name: 'mj_gateway_cache_evictions_total',
      help: 'Entries pushed out of the in-process cache by its size bound',
      registers
    })
    this.upstreamRequests = new Counter({
      name: 'mj_gateway_upstream_requests_total',
      help: 'Upstream attempts (retries counted one by one) by outcome',
      labelNames: ['outcome'],
      registers
    })
    this.upstreamDuration = new Histogram({
      name: 'mj_gateway_upstream_request_duration_seconds',
      help: 'Duration of one upstream attempt',
      labelNames: ['outcome'],
      buckets: UPSTREAM_BUCKETS,
      registers
    })
    this.upstreamInflight = new Gauge({
      name: 'mj_gateway_upstream_inflight',
      help: 'Upstream attempts under way',
      registers
    })
    this.redisUp = opts.redis
      ? new Gauge({ name: 'mj_gateway_redis_up', help: '1 while the shared Redis tier answers', registers })
      : undefined

    // Labelled series start at zero so dashboards show them before the first event.
    const results: LookupResult[] = opts.redis ? [...LOOKUP_RESULTS, 'hit_shared'] : [...LOOKUP_RESULTS]
    const children = {} as Record<LookupResult, { inc(): void }>
    for (const r of results) children[r] = this.cacheLookups.labels(r)
    this.lookupChildren = children
    for (const r of results) this.cacheLookups.inc({ result: r }, 0)
    for (const o of UPSTREAM_OUTCOMES) {
      this.upstreamRequests.inc({ outcome: o }, 0)
      this.upstreamDuration.zero({ outcome: o })
    }
    this.cacheEvictions.inc(0)
    this.upstreamInflight.set(0)
    this.redisUp?.set(0)
  }

  lookup(result: LookupResult): void {
    this.lookupChildren[result].inc()
  }

  upstreamAttempt(outcome: UpstreamOutcome, seconds: number): void {
    this.upstreamRequests.inc({ outcome })
    this.upstreamDuration.observe({ outcome }, seconds)
  }
}
