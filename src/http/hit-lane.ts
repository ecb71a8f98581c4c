import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ClientIdentity, ClientKeyTable } from '../clients/client-keys.js'
import { identityOf } from '../clients/identity.js'
import type { Entry, TaskCache } from '../cache/task-cache.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { hitCacheControl } from '../cache/cache-control.js'
import type { GatewayMetrics, HttpSeries } from '../metrics/gateway-metrics.js'
import { rateLimitKey, type RateLimitCounter } from '../rate-limit/counter.js'
import { etagMatches } from '../routes/task-fetch.js'
import { FETCH_ROUTE, fetchUrlTaskId } from '../tasks/task-id.js'
import type { AccessLog } from '../logging/access-log.js'
import type { CorsPolicy } from './cors-policy.js'
import type { HeaderList } from './header-list.js'
import { requestProblem } from './request-checks.js'
import { SECURITY_HEADER_LIST } from './security-headers.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientInflight } from '../clients/client-inflight.js'
import type { TaskRewriter } from '../images/task-rewrite.js'

export type Listener = (req: IncomingMessage, res: ServerResponse) => void

declare module 'fastify' {
  interface FastifyInstance {
    /** the hit path ahead of Fastify (src/http/hit-lane.ts); undefined with HIT_LANE=off */
    hitLane: HitLane | undefined
  }
}

export interface HitLaneOptions {
  cache: TaskCache
  metrics: GatewayMetrics
  /** record mj_gateway_http_* (false only for the benchmark's "metrics off" candidate) */
  httpMetrics: boolean
  clients: ClientKeyTable
  /** RATE_LIMIT_PER_MINUTE's counter, the one the Fastify routes count in; undefined when the limit is off */
  rateLimit: RateLimitCounter | undefined
  /** CORS_ORIGINS, as the Fastify routes apply it */
  cors: CorsPolicy
  /** the client's address as Fastify's request.ip works it out (TRUST_PROXY) */
  clientIp: (req: IncomingMessage) => string | undefined
  /** writes the access line (LOG_LEVEL info and below); undefined when that level is off */
  accessLog: AccessLog | undefined
  /** CONTRACT §9: the route's very check; anything but a plain yes (a denial, a store to wait for) goes to the route */
  ownership: Ownership
  /** CLIENT_MAX_INFLIGHT: a client at its cap is left to the route, which refuses it */
  inflight: ClientInflight
  /** IMAGE_REWRITE=on: the body clients get, as the route presents it; undefined = the stored bytes */
  rewriter?: TaskRewriter | undefined
  /** a live task was answered: the refresher watches it (docs/push.md), as the route does */
  fetched?: (id: string, now: number) => void
}

/**
 * The hit path ahead of Fastify (HIT_LANE=on). A GET of a task the memory cache holds fresh is the request this
 * gateway answers most, and Fastify's per-request machinery (request and reply objects, routing, hooks, schema
 * validation, the send pipeline) costs as much again as the answer itself. This lane answers exactly that request,
 * with the same status, headers and body as the Fastify route, by calling the same rules in the same order:
 *
 *   pre-checks (request-checks.ts) → identity (clients/identity.ts) → admission (load shedding, rate-limit/counter.ts)
 *   → [who may see the task] → cache lookup → write (security-headers.ts, cache-control.ts, cors-policy.ts, the counter's
 *   headers), then the same metrics and access line.
 *
 * Anything else goes to Fastify untouched, which answers it the same way: another URL or method, a request a
 * pre-check refuses, a missing or wrong token, an overloaded or closing server, a client over its limit, a task not
 * fresh in memory. So the lane may always decline. What it has worked out (identity, the rate-limit count) rides on
 * the request, so Fastify does not count or identify a declined request again.
 */
export class HitLane {
  /**
   * set when the app starts closing: Fastify then answers every new request (503, connection: close); one the lane
   * took before, still waiting for its rate-limit count, is answered here with connection: close
   */
  closing = false
  /** true while the event loop lags (EVENT_LOOP_MAX_DELAY_MS): the shedding plugin decides those requests */
  underPressure: () => boolean = () => false
  /** requests this lane answered (the rest went to Fastify) */
  answered = 0
  private readonly ok: HttpSeries
  private readonly notModified: HttpSeries

  constructor(
    private readonly opts: HitLaneOptions,
    private readonly next: Listener
  ) {
    this.ok = opts.metrics.http('GET', FETCH_ROUTE, 200)
    this.notModified = opts.metrics.http('GET', FETCH_ROUTE, 304)
  }

  /** the server's request listener */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (!this.claim(req, res)) this.next(req, res)
  }

  /** true: the lane has the request (it answers it, or hands it to Fastify itself once the count is back) */
  private claim(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET' || this.closing) return false
    const id = fetchUrlTaskId(req.url as string)
    if (id === undefined || requestProblem(req) !== undefined || this.underPressure()) return false
    const start = performance.now()
    // the token first: without one, not even the cache is looked at (as on the route)
    const client = identityOf(req, this.opts.clients)
    if (!client.authorized || !this.opts.inflight.admits(client)) return false
    const limit = this.opts.rateLimit
    if (limit === undefined) return this.serve(req, res, id, client, start, undefined)
    limit.admit(
      req,
      () => rateLimitKey(client, this.opts.clientIp(req)),
      (admission) => {
        // over the limit, a store in trouble, or not servable here: the route answers, with this same count
        if (admission === null || admission.over || !this.serve(req, res, id, client, start, admission.headers)) this.next(req, res)
      }
    )
    return true
  }

  /** Answers a fresh hit and returns true, or returns false and leaves the request to Fastify. */
  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    client: ClientIdentity,
    start: number,
    rateLimitHeaders: Readonly<HeaderList> | undefined
  ): boolean {
    // who may see the task: the route's own check (routes/task-fetch.ts). A promise (an owner to look up in Redis)
    // is dropped and the route decides: it never rejects, and the owner it finds is remembered for the next hit.
    if (this.opts.ownership.canRead(client, id) !== true) return false
    const now = this.opts.cache.now()
    const hit = this.opts.cache.fresh(id, now)
    if (hit === undefined) return false
    if (!hit.terminal) this.opts.fetched?.(id, now)
    this.write(req, res, hit, now, client, start, rateLimitHeaders)
    return true
  }

  private write(
    req: IncomingMessage,
    res: ServerResponse,
    hit: Entry,
    now: number,
    client: ClientIdentity,
    start: number,
    rateLimitHeaders: Readonly<HeaderList> | undefined
  ): void {
    this.answered++
    this.opts.metrics.lookup('hit')
    // in the order the Fastify route sends them: CORS (its hook runs first, at the root), security, rate limit,
    // then the route's own
    let headers: HeaderList
    if (this.opts.cors.enabled) {
      headers = []
      this.opts.cors.responseHeaders(req.headers.origin, headers)
      headers.push(...SECURITY_HEADER_LIST)
    } else {
      headers = SECURITY_HEADER_LIST.slice()
    }
    headers.push('cache-control', hitCacheControl(hit, now))
    if (rateLimitHeaders !== undefined) headers.push(...rateLimitHeaders)
    const rewriter = this.opts.rewriter
    const { body, etag } = rewriter === undefined ? hit : rewriter.present(hit.body, hit.etag, now)
    headers.push('x-cache', 'HIT', 'etag', etag)
    // a request the lane took before close began (its count came back later): answered, and its socket let go as
    // Fastify's onSend does while closing (docs/operations.md §3)
    if (this.closing) headers.push('connection', 'close')
    const status = etagMatches(req.headers['if-none-match'], etag) ? 304 : 200
    if (status === 304) {
      res.writeHead(304, headers)
      res.end()
    } else {
      headers.push('content-type', JSON_CONTENT_TYPE, 'content-length', body.length)
      res.writeHead(200, headers)
      res.end(body)
    }
    const ms = performance.now() - start
    if (this.opts.httpMetrics) (status === 200 ? this.ok : this.notModified).observe(ms / 1000)
    this.opts.accessLog?.write(req, status, client, ms)
    this.opts.metrics.clientRequest(client.label, FETCH_ROUTE, status)
  }
}
