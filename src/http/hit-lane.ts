import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ClientIdentity, ClientKeyTable } from '../clients/client-keys.js'
import type { Entry, TaskCache } from '../cache/task-cache.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import type { GatewayMetrics, HttpSeries } from '../metrics/gateway-metrics.js'
import { MAX_HEADER_COUNT, SECURITY_HEADERS } from '../plugins/hardening.js'
import { CORS_EXPOSED_HEADERS } from '../plugins/cors.js'
import { rateLimitKey, type RateLimitCounter } from '../rate-limit/counter.js'
import { etagMatches, FETCH_ROUTE } from '../routes/task-fetch.js'
import type { AccessLog } from '../logging/access-log.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientInflight } from '../clients/client-inflight.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void

declare module 'fastify' {
  interface FastifyInstance {
    /** the hit path ahead of Fastify (src/http/hit-lane.ts) */
    hitLane: HitLane
  }
}

export interface HitLaneOptions {
  cache: TaskCache
  metrics: GatewayMetrics
  /** record mj_gateway_http_* (false only for the benchmark's "metrics off" candidate) */
  httpMetrics: boolean
  clients: ClientKeyTable
  /** RATE_LIMIT_PER_MINUTE's counter, the very store @fastify/rate-limit counts in; undefined when the limit is off */
  rateLimit: RateLimitCounter | undefined
  /** CORS_ORIGINS; empty = no CORS headers */
  corsOrigins: readonly string[]
  /** the client's address as Fastify's request.ip works it out (TRUST_PROXY) */
  clientIp: (req: IncomingMessage) => string | undefined
  /** writes the access line (LOG_LEVEL info and below); undefined when that level is off */
  accessLog: AccessLog | undefined
  /** CONTRACT §9: the route's very check; anything but a plain yes (a denial, a store to wait for) goes to the route */
  ownership: Ownership
  /** CLIENT_MAX_INFLIGHT: a client at its cap is left to the route, which refuses it */
  inflight: ClientInflight
}

/**
 * SECURITY_HEADERS but cache-control (the route sets its own), as the name/value pairs of a flat header list.
 * Each answer copies this list and appends to it: cheap, unlike copying an object and adding keys to the copy
 * (that cost V8 ~10 µs a request, a third of the whole hit).
 */
const SECURITY_PAIRS: ReadonlyArray<string | number> = Object.entries(SECURITY_HEADERS)
  .filter(([name]) => name !== 'cache-control')
  .flat()

/** Exactly the canonical fetch URL: anything else (a query, an escape, a trailing slash) is left to the router. */
const FETCH_URL = /^\/mj\/task\/([A-Za-z0-9_-]{1,64})\/fetch$/

/**
 * The hit path ahead of Fastify. A GET of a task the memory cache holds fresh is the request this gateway answers
 * most, and Fastify's per-request machinery (request and reply objects, routing, hooks, schema validation, the
 * send pipeline) cost as much again as the answer itself. This lane answers exactly that request, with the same
 * status, headers and body the Fastify route sends and with the same checks before it: the token, the rate limit
 * (counted in the same store), load shedding, the security and CORS headers, metrics and the access line.
 *
 * Anything else goes to Fastify untouched: another URL or method, a body on the GET, a header flood, a missing or
 * wrong token, a client over its limit, an overloaded or closing server, a task not fresh in memory. The route
 * there answers the same request the same way, so the lane may always decline.
 */
export class HitLane {
  /** set when the app starts closing: Fastify then answers every request (connection: close, 503 once closed) */
  closing = false
  /** true while the event loop lags (EVENT_LOOP_MAX_DELAY_MS): the shedding plugin decides those requests */
  underPressure: () => boolean = () => false
  /** requests this lane answered (the rest went to Fastify) */
  answered = 0
  private readonly cors: ReadonlySet<string>
  private readonly ok: HttpSeries
  private readonly notModified: HttpSeries
  private readonly exposed: string

  constructor(
    private readonly opts: HitLaneOptions,
    private readonly next: Handler
  ) {
    this.cors = new Set(opts.corsOrigins)
    this.ok = opts.metrics.http('GET', FETCH_ROUTE, 200)
    this.notModified = opts.metrics.http('GET', FETCH_ROUTE, 304)
    this.exposed = CORS_EXPOSED_HEADERS.join(', ')
  }

  /** the server's request listener */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (!this.claim(req, res)) this.next(req, res)
  }

  private claim(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET' || this.closing) return false
    const m = FETCH_URL.exec(req.url as string)
    if (m === null) return false
    const h = req.headers
    if (h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')) return false
    if (req.rawHeaders.length > 2 * MAX_HEADER_COUNT || this.underPressure()) return false
    const start = performance.now()
    // the token first: without one, not even the cache is looked at (as on the route)
    const client = this.opts.clients.identify(h)
    if (!client.authorized) return false
    if (!this.opts.inflight.admits(client)) return false
    const id = m[1] as string
    const now = Date.now()
    const hit = this.opts.cache.fresh(id, now)
    if (hit === undefined) return false
    // A promise (an owner to look up in Redis) is dropped: it never rejects, and what it finds is remembered.
    if (this.opts.ownership.canRead(client, id) !== true) return false
    const limit = this.opts.rateLimit
    if (limit === undefined) {
      this.answer(req, res, hit, now, client, start, undefined)
      return true
    }
    let counting = true
    limit.count(rateLimitKey(client, this.opts.clientIp(req)), (err, counted) => {
      // over the limit (or a store error): the route counts it again and answers 429 (or the error)
      if (err !== null || counted === undefined || counted.current > limit.max) return this.next(req, res)
      if (counting) return this.answer(req, res, hit, now, client, start, counted)
      // A store that answers later (Redis): look again, the entry may have gone meanwhile. Then the route answers,
      // and counts the request a second time: rare, and one count at most.
      const later = Date.now()
      const again = this.opts.cache.fresh(id, later)
      if (again === undefined || this.closing) return this.next(req, res)
      this.answer(req, res, again, later, client, start, counted)
    })
    counting = false
    return true
  }

  private answer(
    req: IncomingMessage,
    res: ServerResponse,
    hit: Entry,
    now: number,
    client: ClientIdentity,
    start: number,
    counted: { current: number; ttl: number } | undefined
  ): void {
    this.answered++
    this.opts.metrics.lookup('hit')
    // in the order the Fastify route sends them: security, CORS, rate limit, then the route's own
    const headers = SECURITY_PAIRS.slice()
    headers.push('cache-control', hit.terminal ? `private, max-age=${Math.floor((hit.freshUntil - now) / 1000)}` : 'no-cache')
    if (this.cors.size > 0) {
      headers.push('vary', 'Origin')
      const origin = req.headers.origin
      if (origin !== undefined && this.cors.has(origin)) headers.push('access-control-allow-origin', origin, 'access-control-expose-headers', this.exposed)
    }
    if (counted !== undefined) {
      const max = (this.opts.rateLimit as RateLimitCounter).max
      headers.push('x-ratelimit-limit', max, 'x-ratelimit-remaining', Math.max(0, max - counted.current), 'x-ratelimit-reset', Math.ceil(counted.ttl / 1000))
    }
    headers.push('x-cache', 'HIT', 'etag', hit.etag)
    const status = etagMatches(req.headers['if-none-match'], hit.etag) ? 304 : 200
    if (status === 304) {
      res.writeHead(304, headers)
      res.end()
    } else {
      headers.push('content-type', JSON_CONTENT_TYPE, 'content-length', hit.body.length)
      res.writeHead(200, headers)
      res.end(hit.body)
    }
    const ms = performance.now() - start
    if (this.opts.httpMetrics) (status === 200 ? this.ok : this.notModified).observe(ms / 1000)
    this.opts.metrics.clientRequest(client.label, FETCH_ROUTE, status)
    this.opts.accessLog?.write(req, status, client, ms)
  }
}
