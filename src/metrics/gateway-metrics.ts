import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { VERSION } from '../process/build-info.js'

export type LookupResult = 'hit' | 'miss' | 'coalesced' | 'stale' | 'hit_shared'
export type UpstreamOutcome = 'ok' | 'http_4xx' | 'http_5xx' | 'timeout' | 'error'

/** why a value read from Redis was refused (src/redis/shared-tier.ts) */
export const REDIS_REJECT_REASONS = ['foreign', 'not_terminal', 'not_live', 'bad', 'expired'] as const
export type RedisRejectReason = (typeof REDIS_REJECT_REASONS)[number]

const LOOKUP_RESULTS: readonly LookupResult[] = ['hit', 'miss', 'coalesced', 'stale']
const UPSTREAM_OUTCOMES: readonly UpstreamOutcome[] = ['ok', 'http_4xx', 'http_5xx', 'timeout', 'error']

// From a 50 µs cache hit to a 10 s upstream budget.
const HTTP_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const UPSTREAM_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

type HttpLabel = 'method' | 'route' | 'status_code'

/**
 * One (method, route, status) series of the two http instruments. The request path only adds to plain numbers
 * here; prom-client sees them when /metrics is scraped. (prom-client's own inc()/observe() validate and hash the
 * label set on every call, which cost more than all the rest of a cache hit's bookkeeping.)
 */
export class HttpSeries {
  count = 0
  sum = 0
  /** observations per bucket of HTTP_BUCKETS, not cumulative; the last slot is +Inf */
  readonly perBucket = new Float64Array(HTTP_BUCKETS.length + 1)
  /** what the prom-client counter has been told so far */
  counted = 0
  readonly labels: Record<HttpLabel, string>

  constructor(
    readonly method: string,
    readonly route: string,
    readonly status: number
  ) {
    this.labels = { method, route, status_code: String(status) }
  }

  observe(seconds: number): void {
    this.count++
    this.sum += seconds
    let i = 0
    while (i < HTTP_BUCKETS.length && seconds > (HTTP_BUCKETS[i] as number)) i++
    this.perBucket[i] = (this.perBucket[i] as number) + 1
  }
}

interface ExportedValue {
  labels: Record<string, string | number>
  sharedLabels: Record<string, string>
  value: number
  metricName: string
}

/**
 * prom-client's Histogram, its values read from HttpSeries when scraped rather than observed one by one. It overrides
 * getForPromString, an internal the registry renders through: prom-client is pinned to an exact version for it, and
 * test/prom-client-seam.test.ts fails if an upgrade changes that.
 */
class SeriesHistogram extends Histogram<HttpLabel> {
  private readonly metricName: string
  private readonly metricHelp: string

  constructor(
    config: { name: string; help: string; labelNames: HttpLabel[]; buckets: number[]; registers: Registry[] },
    private readonly series: () => Iterable<HttpSeries>
  ) {
    super(config)
    this.metricName = config.name
    this.metricHelp = config.help
  }

  /** what prom-client's registry renders (and get() returns): the same values its own observe() would have built */
  async getForPromString(): Promise<{ name: string; help: string; type: string; values: ExportedValue[]; aggregator: string }> {
    const values: ExportedValue[] = []
    for (const s of this.series()) {
      let cumulative = 0
      HTTP_BUCKETS.forEach((le, i) => {
        cumulative += s.perBucket[i] as number
        values.push({ labels: { le }, sharedLabels: s.labels, value: cumulative, metricName: `${this.metricName}_bucket` })
      })
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: `${this.metricName}_bucket` })
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.metricName}_sum` })
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.metricName}_count` })
    }
    return { name: this.metricName, help: this.metricHelp, type: 'histogram', values, aggregator: 'sum' }
  }
}

/** docs/images.md: image request results (the archive outcomes come from src/images/cdn-fetch.ts) */
export type ImageRequestResult = 'hit' | 'fetched' | 'gone'
const IMAGE_REQUEST_RESULTS: readonly ImageRequestResult[] = ['hit', 'fetched', 'gone']

export interface CacheGauges {
  entries(): number
  bytes(): number
}

/** Every instrument of docs/metrics.md, on a registry of its own (tests build several apps in one process). */
export class GatewayMetrics {
  readonly registry = new Registry()
  readonly httpRequests: Counter<HttpLabel>
  readonly httpDuration: Histogram<HttpLabel>
  readonly cacheLookups: Counter<'result'>
  readonly cacheEvictions: Counter
  readonly upstreamRequests: Counter<'outcome'>
  readonly upstreamDuration: Histogram<'outcome'>
  readonly upstreamInflight: Gauge
  readonly redisUp: Gauge | undefined
  /** values read from Redis and refused (a miss); only with REDIS_URL */
  readonly redisRejected: Counter<'reason'> | undefined
  /** cache lookups counted on the request path, handed to prom-client when scraped */
  private readonly lookups: Record<LookupResult, number> = { hit: 0, miss: 0, coalesced: 0, stale: 0, hit_shared: 0 }
  /** route → its series, one per method and status */
  private readonly httpSeries = new Map<string, HttpSeries[]>()
  // tenancy (CONTRACT §9)
  readonly clientSubmits: Counter<'client' | 'action'>
  readonly ownershipDenied: Counter<'route'>
  readonly tenancyStoreErrors: Counter<'store'>
  /** `client\0route\0status` → requests answered, handed to prom-client when scraped (the hit lane counts here too) */
  private readonly clientCounts = new Map<string, { labels: Record<'client' | 'route' | 'status_code', string>; n: number; counted: number }>()

  readonly imagesArchived: Counter<'outcome'>
  readonly imageRequests: Counter<'result'>

  constructor(opts: {
    cache: CacheGauges
    redis: boolean
    logLinesDropped?: () => number
    images?: { outcomes: readonly string[]; storeBytes(): number }
  }) {
    const registers = [this.registry]
    const results: LookupResult[] = opts.redis ? [...LOOKUP_RESULTS, 'hit_shared'] : [...LOOKUP_RESULTS]
    collectDefaultMetrics({ register: this.registry })
    const allSeries = (): Iterable<HttpSeries> => [...this.httpSeries.values()].flat()
    this.httpRequests = new Counter({
      name: 'mj_gateway_http_requests_total',
      help: 'HTTP requests answered by the gateway',
      labelNames: ['method', 'route', 'status_code'],
      registers,
      collect() {
        // every series made so far, at zero too (routes' series are made when the route is: README "Metrics")
        for (const s of allSeries()) {
          this.inc(s.labels, s.count - s.counted)
          s.counted = s.count
        }
      }
    })
    this.httpDuration = new SeriesHistogram(
      {
        name: 'mj_gateway_http_request_duration_seconds',
        help: 'Time from request to response, as the gateway sees it',
        labelNames: ['method', 'route', 'status_code'],
        buckets: HTTP_BUCKETS,
        registers
      },
      allSeries
    )
    const lookups = this.lookups
    const counted: Record<LookupResult, number> = { ...lookups }
    this.cacheLookups = new Counter({
      name: 'mj_gateway_cache_lookups_total',
      help: 'Task fetches by how the cache answered them',
      labelNames: ['result'],
      registers,
      collect() {
        for (const r of results) {
          if (lookups[r] > counted[r]) this.inc({ result: r }, lookups[r] - counted[r])
          counted[r] = lookups[r]
        }
      }
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
    const logLinesDropped = opts.logLinesDropped ?? ((): number => 0)
    let droppedCounted = 0
    new Counter({
      name: 'mj_gateway_log_lines_dropped_total',
      help: 'Log lines dropped because stdout was closed or its reader fell behind (logging never blocks serving)',
      registers,
      collect() {
        const dropped = logLinesDropped()
        this.inc(dropped - droppedCounted)
        droppedCounted = dropped
      }
    })
    this.redisUp = opts.redis
      ? new Gauge({ name: 'mj_gateway_redis_up', help: '1 while the shared Redis tier answers', registers })
      : undefined
    new Gauge({
      name: 'mj_gateway_build_info',
      help: 'Always 1: the running gateway version and Node.js version as labels',
      labelNames: ['version', 'node_version'],
      registers
    }).set({ version: VERSION, node_version: process.version }, 1)
    this.redisRejected = opts.redis
      ? new Counter({
          name: 'mj_gateway_redis_values_rejected_total',
          help: 'Values read from Redis that failed the local caching rules (treated as misses), by reason',
          labelNames: ['reason'],
          registers
        })
      : undefined
    for (const reason of REDIS_REJECT_REASONS) this.redisRejected?.inc({ reason }, 0)

    const clientCounts = this.clientCounts
    new Counter({
      name: 'mj_gateway_client_requests_total',
      help: 'Requests on /mj routes by client (configured name, jwt, or anonymous), route pattern and status',
      labelNames: ['client', 'route', 'status_code'],
      registers,
      collect() {
        for (const c of clientCounts.values()) {
          if (c.n > c.counted) this.inc(c.labels, c.n - c.counted)
          c.counted = c.n
        }
      }
    })
    this.clientSubmits = new Counter({
      name: 'mj_gateway_client_submits_total',
      help: 'Submits forwarded upstream by client and action',
      labelNames: ['client', 'action'],
      registers
    })
    this.ownershipDenied = new Counter({
      name: 'mj_gateway_ownership_denied_total',
      help: 'Requests for a task another client owns (answered as an unknown id), by route',
      labelNames: ['route'],
      registers
    })
    this.tenancyStoreErrors = new Counter({
      name: 'mj_gateway_tenancy_store_errors_total',
      help: 'Failed reads or writes of owner records or submit counts (ownership then denies)',
      labelNames: ['store'],
      registers
    })
    this.imagesArchived = new Counter({
      name: 'mj_gateway_images_archived_total',
      help: 'Attempts to archive a task image, by outcome',
      labelNames: ['outcome'],
      registers
    })
    const images = opts.images ?? { outcomes: [], storeBytes: () => 0 }
    new Gauge({
      name: 'mj_gateway_image_store_bytes',
      help: 'Bytes held by the image archive',
      registers,
      collect() {
        this.set(images.storeBytes())
      }
    })
    this.imageRequests = new Counter({
      name: 'mj_gateway_image_requests_total',
      help: 'Image requests answered with an image (hit: archived; fetched: archived on the way) or found gone',
      labelNames: ['result'],
      registers
    })
    for (const o of ['ok', ...images.outcomes]) this.imagesArchived.inc({ outcome: o }, 0)
    for (const r of IMAGE_REQUEST_RESULTS) this.imageRequests.inc({ result: r }, 0)

    // Labelled series start at zero so dashboards show them before the first event.
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
    this.lookups[result]++
  }

  /** The series of one method, route pattern and status: what an http response is recorded in. */
  http(method: string, route: string, status: number): HttpSeries {
    let forRoute = this.httpSeries.get(route)
    if (forRoute === undefined) {
      forRoute = []
      this.httpSeries.set(route, forRoute)
    }
    // a route sees a handful of (method, status) pairs: a scan beats building a key
    for (const s of forRoute) if (s.status === status && s.method === method) return s
    const s = new HttpSeries(method, route, status)
    forRoute.push(s)
    return s
  }

  /** one answered /mj request of a client (its metrics label), on a route pattern */
  clientRequest(client: string, route: string, status: number): void {
    const key = `${client}\0${route}\0${status}`
    const c = this.clientCounts.get(key)
    if (c !== undefined) c.n++
    else this.clientCounts.set(key, { labels: { client, route, status_code: String(status) }, n: 1, counted: 0 })
  }

  upstreamAttempt(outcome: UpstreamOutcome, seconds: number): void {
    this.upstreamRequests.inc({ outcome })
    this.upstreamDuration.observe({ outcome }, seconds)
  }
}
