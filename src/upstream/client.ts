import { rootCertificates } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici'
import type { Config } from '../config.js'
import type { GatewayMetrics, UpstreamOutcome } from '../metrics/gateway-metrics.js'
import { FairShare } from './fair-share.js'
import {
  UpstreamBadResponseError,
  UpstreamHttpError,
  UpstreamTimeoutError,
  UpstreamUnreachableError
} from '../http/errors.js'

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
  client?: string
}

const RETRY_STATUSES = new Set([502, 503, 504])
const POOL_CONNECTIONS = 64
const BACKOFF_BASE_MS = 100
const BACKOFF_CAP_MS = 1000

class BodyTooLarge extends Error {}
class CarriesKey extends Error {}

/**
 * The byte strings that would show the key in a body: as is, and as a JSON string escapes it (`\\` and `"`,
 * and `/` as `\/`, which some serialisers write), so an upstream that echoes its request headers cannot show it.
 */
export function keySpellings(key: string): Buffer[] {
  const json = JSON.stringify(key).slice(1, -1)
  return [...new Set([key, json, json.replaceAll('/', '\\/')])].map((s) => Buffer.from(s))
}

/**
 * undici Pool with keep-alive, the key injected per UPSTREAM_AUTH_STYLE, one time budget over all tries,
 * and full-jitter retries. Hand-written rather than undici's RetryAgent because that one neither bounds all
 * tries by one deadline nor lets each attempt be counted in metrics, and both are in the contract.
 */
export class UpstreamClient {
  private readonly pool: Pool
  private readonly authHeader: [string, string]
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
      headersTimeout: cfg.timeoutMs,
      bodyTimeout: cfg.timeoutMs,
      connect: {
        timeout: Math.min(cfg.timeoutMs, 10_000),
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
      const body = await this.readBody(res)
      // CONTRACT §9: no body that reaches a client (every route's answers come through here) shows the key
      if (this.keyNeedles.some((k) => body.includes(k))) throw new CarriesKey()
      outcome = res.statusCode >= 500 ? 'http_5xx' : res.statusCode >= 400 ? 'http_4xx' : 'ok'
      result = {
        status: res.statusCode,
        body,
        contentType: headerValue(res.headers['content-type']),
        retryAfter: headerValue(res.headers['retry-after'])
      }
    } catch (err) {
      if (timedOut) {
        outcome = 'timeout'
        result = { failure: new UpstreamTimeoutError(this.cfg.timeoutMs), retry: false }
      } else if (err instanceof BodyTooLarge) {
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

  private async readBody(res: Dispatcher.ResponseData): Promise<Buffer> {
    const max = this.cfg.maxBodyBytes
    const declared = Number(res.headers['content-length'])
    if (declared > max) {
      // An unread undici body emits RequestAbortedError when destroyed: without a listener that is an
      // uncaught exception, and one oversized upstream answer would take the whole process down.
      res.body.on('error', () => undefined)
      res.body.destroy()
      throw new BodyTooLarge()
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > max) {
        res.body.destroy()
        throw new BodyTooLarge()
      }
      chunks.push(chunk as Buffer)
    }
    return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)
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

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}
