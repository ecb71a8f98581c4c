import type { Config } from './config.js'
import type { GatewayMetrics } from './metrics.js'
import type { UpstreamClient } from './upstream/client.js'
import { classify, type CacheRules } from './cache/policy.js'
import { etagOf, type TaskCache } from './cache/task-cache.js'
import {
  TaskNotFoundError,
  UpstreamAuthError,
  UpstreamBadResponseError,
  isUpstreamFailure
} from './errors.js'

export type CacheStatus = 'HIT' | 'MISS' | 'COALESCED' | 'STALE'

/** A second, shared cache tier (Redis) for terminal tasks. */
export interface SharedTier {
  get(id: string): Promise<{ body: Buffer; ttlMs: number } | undefined>
  set(id: string, body: Buffer, ttlMs: number): void
}

/** What a task fetch answers with: a 200 task body, or an upstream 4xx answer passed through. */
export type Served =
  | { kind: 'task'; body: Buffer; etag: string; cacheControl: string; cache: CacheStatus }
  | { kind: 'answer'; status: number; body: Buffer; contentType: string | undefined; retryAfter: string | undefined }

/** One flight's result, shared by the leader and every request coalesced onto it. */
type Loaded =
  | { kind: 'task'; body: Buffer; etag: string; maxAgeSeconds: number | undefined; source: 'upstream' | 'shared' | 'stale' }
  | { kind: 'answer'; status: number; body: Buffer; contentType: string | undefined; retryAfter: string | undefined }

export function cacheControlFor(maxAgeSeconds: number | undefined): string {
  return maxAgeSeconds === undefined ? 'no-cache' : `private, max-age=${maxAgeSeconds}`
}

/** The miss path of GET /mj/task/:id/fetch: shared tier, upstream, policy, store, stale stand-in. */
export class TaskService {
  private readonly rules: CacheRules

  constructor(
    cfg: Config['cache'],
    private readonly cache: TaskCache,
    private readonly upstream: UpstreamClient,
    private readonly metrics: GatewayMetrics,
    private readonly shared?: SharedTier
  ) {
    this.rules = { ttlSeconds: cfg.ttlSeconds, urlExpiryMarginSeconds: cfg.urlExpiryMarginSeconds, pollCacheMs: cfg.pollCacheMs }
  }

  async fetch(id: string): Promise<Served> {
    const { promise, leader } = this.cache.flight(id, () => this.load(id))
    let loaded: Loaded
    try {
      loaded = await promise
    } catch (err) {
      this.metrics.lookup(leader ? 'miss' : 'coalesced')
      throw err
    }
    if (loaded.kind === 'answer') {
      this.metrics.lookup(leader ? 'miss' : 'coalesced')
      return loaded
    }
    let cache: CacheStatus
    if (loaded.source === 'stale') {
      cache = 'STALE'
      this.metrics.lookup('stale')
    } else if (loaded.source === 'shared') {
      cache = 'HIT'
      this.metrics.lookup('hit_shared')
    } else {
      cache = leader ? 'MISS' : 'COALESCED'
      this.metrics.lookup(leader ? 'miss' : 'coalesced')
    }
    return { kind: 'task', body: loaded.body, etag: loaded.etag, cacheControl: cacheControlFor(loaded.maxAgeSeconds), cache }
  }

  private async load(id: string): Promise<Loaded> {
    if (this.shared !== undefined) {
      const hit = await this.shared.get(id)
      if (hit !== undefined) {
        const etag = etagOf(hit.body)
        this.cache.store(id, hit.body, etag, true, hit.ttlMs, Date.now())
        return { kind: 'task', body: hit.body, etag, maxAgeSeconds: Math.floor(hit.ttlMs / 1000), source: 'shared' }
      }
    }
    let res
    try {
      res = await this.upstream.request({ method: 'GET', path: `/mj/task/${id}/fetch`, idempotent: true })
    } catch (err) {
      return this.standIn(id, err)
    }
    if (res.status === 401 || res.status === 403) throw new UpstreamAuthError(res.status)
    if (res.status >= 400) return { kind: 'answer', ...res }
    if (res.status >= 300) return this.standIn(id, new UpstreamBadResponseError(`unexpected HTTP ${res.status}`))

    const now = Date.now()
    const verdict = classify(res.body, id, now, this.rules)
    const etag = etagOf(res.body)
    switch (verdict.kind) {
      case 'not_found':
        this.cache.delete(id)
        throw new TaskNotFoundError(id)
      case 'bad':
        return this.standIn(id, new UpstreamBadResponseError(verdict.reason))
      case 'foreign':
        return { kind: 'task', body: res.body, etag, maxAgeSeconds: undefined, source: 'upstream' }
      case 'live':
        this.cache.store(id, res.body, etag, false, verdict.ttlMs, now)
        return { kind: 'task', body: res.body, etag, maxAgeSeconds: undefined, source: 'upstream' }
      case 'terminal': {
        if (verdict.ttlMs === 0) {
          this.cache.delete(id)
          return { kind: 'task', body: res.body, etag, maxAgeSeconds: undefined, source: 'upstream' }
        }
        this.cache.store(id, res.body, etag, true, verdict.ttlMs, now)
        this.shared?.set(id, res.body, verdict.ttlMs)
        return { kind: 'task', body: res.body, etag, maxAgeSeconds: Math.floor(verdict.ttlMs / 1000), source: 'upstream' }
      }
    }
  }

  /** CONTRACT §5.5: a last-known 200 stands in for an upstream failure, never for an upstream answer. */
  private standIn(id: string, err: unknown): Loaded {
    const last = isUpstreamFailure(err) ? this.cache.lastKnown(id, Date.now()) : undefined
    if (last === undefined) throw err
    return { kind: 'task', body: last.body, etag: last.etag, maxAgeSeconds: undefined, source: 'stale' }
  }
}
