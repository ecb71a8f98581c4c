import { rootCertificates } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool, errors as undiciErrors } from 'undici'
import type { Config } from '../config.js'
import type { GatewayMetrics, UpstreamOutcome } from '../metrics/gateway-metrics.js'
import { FairShare } from './fair-share.js'
import {
  UpstreamBadResponseError,
  UpstreamHttpError,
  UpstreamTimeoutError,
  UpstreamUnreachableError
} from './failures.js'
import { KeyHealth } from './key-health.js'

export interface UpstreamResponse {
  status: number
  body: Buffer
  contentType: string | undefined
  retryAfter: string | undefined
}

export interface UpstreamRequest {
  method: 'GET' | 'POST'
  path: string
  body?: Buffer
  /** GETs are retried; a submit is not (it spends money and is not idempotent). */
  idempotent: boolean
  /** whom the call is made for: no client holds more than half of the upstream connections (CONTRACT §9) */
  client?: string | undefined
}

const RETRY_STATUSES = new Set([502, 503, 504])
const POOL_CONNECTIONS = 64

class CarriesKey extends Error {}

/**
 * The byte strings that would show the key in a body: as is, and as a JSON string escapes it (`\\` and `"`,
 * and `/` as `\/`, which some serialisers write), so an upstream that echoes its request headers cannot show it.
 */
export function keySpellings(key: string): Buffer[] {
  const json = JSON.stringify(key).slice(1, -1)
  return [...new Set([key, json, json.replaceAll('/', '\\/')])].map((s) => Buffer.from(s))
}
const BACKOFF_BASE_MS = 100
const BACKOFF_CAP_MS = 1000
/**
 * undici's own header/body timers run this far past the budget: only the gateway's timer ends an attempt on time.
 * (undici's coarse timers fire up to one 499 ms tick early, so at the budget itself they could win the race and a
 * hang would be reported as a connection error, 502 UNREACHABLE, instead of 504 TIMEOUT.)
 */
const UNDICI_TIMER_SLACK_MS = 5000

/**
 * undici Pool with keep-alive, the key injected per UPSTREAM_AUTH_STYLE, one time budget over all tries,
 * and full-jitter retries. Hand-written rather than undici's RetryAgent because that one neither bounds all
 * tries by one deadline nor lets each attempt be counted in metrics, and both are documented
 * (docs/configuration.md §3, docs/metrics.md §4).
 */
export class UpstreamClient {
  private readonly pool: Pool
  private readonly authHeader: [string, string]
  /** whether the upstream refuses the key lately (/readyz) */
  readonly keyHealth = new KeyHealth()
  private readonly keyNeedles: readonly Buffer[]
  private readonly share = new FairShare(POOL_CONNECTIONS)

  constructor(
    private readonly cfg: Config['upstream'],
    private readonly metrics: GatewayMetrics,
    private readonly random: () => number = Math.random
  ) {
    this.authHeader = cfg.authStyle === 'bearer' ? ['authorization', `Bearer ${cfg.apiKey}`] : ['mj-api-secret', cfg.apiKey]
    this.keyNeedles = keySpellings(cfg.apiKey)
    this.pool = new Pool(cfg.baseUrl, {
      connections: POOL_CONNECTIONS,
      keepAliveTimeout: 30_000,
      headersTimeout: cfg.timeoutMs + UNDICI_TIMER_SLACK_MS,
      bodyTimeout: cfg.timeoutMs + UNDICI_TIMER_SLACK_MS,
      // UPSTREAM_MAX_BODY_BYTES: undici stops reading past it (content-length or chunked) and fails the body
      maxResponseSize: cfg.maxBodyBytes,
      connect: {
        // a connect that hangs for the whole budget is a hang like any other: the budget's timer ends it (504)
        timeout: cfg.timeoutMs + UNDICI_TIMER_SLACK_MS,
        rejectUnauthorized: true,
        ...(cfg.ca === undefined ? {} : { ca: [...rootCertificates, cfg.ca] })
      }
    })
  }

  /** The headers every upstream call carries: exactly one credential, the gateway's. */
  headers(extra?: Record<string, string>): Record<string, string> {
    return { accept: 'application/json', 'user-agent': 'mj-gateway', ...extra, [this.authHeader[0]]: this.authHeader[1] }
  }


  /** Resolves with any upstream status below 500 (and 5xx once retries are spent, as UpstreamHttpError). */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const deadline = Date.now() + this.cfg.timeoutMs
    // a connection of this client's share first; the wait is part of the time budget
    let release = this.share.tryAcquire(req.client)
    if (release === undefined) {
      try {
        release = await this.share.wait(req.client, AbortSignal.timeout(this.cfg.timeoutMs))
        /* c8 ignore next 3 -- timing: a waiter outlives the budget only when every holder outlives it too */
      } catch {
        throw new UpstreamTimeoutError(this.cfg.timeoutMs)
      }
    }
    try {
      return await this.attempts(req, deadline)
    } finally {
      release()
    }
  }

  private async attempts(req: UpstreamRequest, deadline: number): Promise<UpstreamResponse> {
    const maxTries = req.idempotent ? this.cfg.retries + 1 : 1
    let lastError: Error = new UpstreamTimeoutError(this.cfg.timeoutMs)
    for (let attempt = 0; attempt < maxTries; attempt++) {
      if (attempt > 0) {
        const delay = this.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt)
        if (Date.now() + delay >= deadline) break
        await sleep(delay)
      }
      // The backoff ended before the deadline, so there is budget left (a timer overshoot leaves 1 ms: a timeout).
      const result = await this.attempt(req, Math.max(1, deadline - Date.now()))
      if ('failure' in result) {
        lastError = result.failure
        if (!result.retry) break
        continue
      }
      if (result.status < 500) return result
      lastError = new UpstreamHttpError(result.status)
      if (!RETRY_STATUSES.has(result.status)) break
    }
    throw lastError
  }

  private async attempt(req: UpstreamRequest, budgetMs: number): Promise<UpstreamResponse | Failure> {
    const started = performance.now()
    const controller = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort()
    }, budgetMs)
    this.metrics.upstreamInflight.inc()
    let outcome: UpstreamOutcome = 'error'
    let result: UpstreamResponse | Failure
    try {
      const res = await this.pool.request({
        method: req.method,
        path: req.path,
        headers: this.headers(req.body ? { 'content-type': 'application/json' } : undefined),
        body: req.body ?? null,
        signal: controller.signal
      })
      this.keyHealth.saw(res.statusCode)
      const body = Buffer.from(await res.body.arrayBuffer())
      // CONTRACT §9: no body that reaches a client (every route's answers come through here) shows the key. A 401,
      // 403 or 5xx body never reaches one (docs/errors.md §3: MJGW_UPSTREAM_AUTH, MJGW_UPSTREAM_ERROR, retries as
      // usual), and an error page that echoes the key must not hide a bad key behind BAD_RESPONSE.
      if (passesBody(res.statusCode) && this.keyNeedles.some((k) => body.includes(k))) throw new CarriesKey()
      outcome = res.statusCode >= 500 ? 'http_5xx' : res.statusCode >= 400 ? 'http_4xx' : 'ok'
      result = {
        status: res.statusCode,
        body,
        contentType: headerValue(res.headers['content-type']),
        retryAfter: headerValue(res.headers['retry-after'])
      }
    } catch (err) {
      // whatever failed once the attempt's budget is spent (a connect timeout of the same length included) is a timeout
      if (timedOut || performance.now() - started >= budgetMs) {
        outcome = 'timeout'
        result = { failure: new UpstreamTimeoutError(this.cfg.timeoutMs), retry: false }
      } else if (err instanceof undiciErrors.ResponseExceededMaxSizeError) {
        result = { failure: new UpstreamBadResponseError(`body larger than ${this.cfg.maxBodyBytes} bytes`), retry: false }
      } else if (err instanceof CarriesKey) {
        result = { failure: new UpstreamBadResponseError('the answer contains the gateway credential'), retry: false }
      } else {
        result = unreachable(err)
      }
    }
    clearTimeout(timer)
    this.metrics.upstreamInflight.dec()
    this.metrics.upstreamAttempt(outcome, (performance.now() - started) / 1000)
    return result
  }

  async close(): Promise<void> {
    await this.pool.close()
  }
}

interface Failure {
  failure: Error
  retry: boolean
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/

/** A connection-level failure; TLS trust failures are final (retrying cannot help), others are retried. */
function unreachable(err: unknown): Failure {
  // undici and node:net errors carry a code (ECONNREFUSED, UND_ERR_SOCKET, DEPTH_ZERO_SELF_SIGNED_CERT, ...)
  const code = String((err as { code?: unknown }).code)
  return { failure: new UpstreamUnreachableError(code), retry: !TLS_CODES.test(code) && !(err instanceof undiciErrors.InvalidArgumentError) }
}

/** Statuses whose upstream body may be passed on to a client (docs/errors.md §3); the others become gateway errors. */
function passesBody(status: number): boolean {
  return status < 500 && status !== 401 && status !== 403
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}
