import type { Config } from '../config.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import type { UpstreamClient } from '../upstream/client.js'
import { classify, type CacheRules } from '../cache/policy.js'
import { etagOf, type TaskCache } from '../cache/task-cache.js'
import { cacheControlFor } from '../cache/cache-control.js'
import { TaskNotFoundError } from '../http/errors.js'
import { UpstreamBadResponseError } from '../upstream/failures.js'
import { takeAnswer, type Answer } from '../upstream/answer.js'

export type CacheStatus = 'HIT' | 'MISS' | 'COALESCED' | 'STALE'

/** What the shared tier (Redis) answers before an upstream call. */
export type SharedBegin =
  /**
   * A response found there: `from: 'tier'` was stored earlier, `from: 'peer'` came from another replica's
   * upstream call that this request waited for. `keep` says how to keep it in memory (undefined: not at all).
   */
  | { kind: 'hit'; body: Buffer; keep: { terminal: boolean; ttlMs: number } | undefined; from: 'tier' | 'peer' }
  /** call upstream; `token` set = this replica holds the cross-replica lock for the id */
  | { kind: 'go'; token: string | undefined }

/** What an upstream 200 leaves in the shared tier: a cacheable response, or a handoff to waiting replicas only. */
export type Share = { kind: 'terminal' | 'live'; body: Buffer; ttlMs: number } | { kind: 'handoff'; body: Buffer }

/** A second, shared cache tier and cross-replica single-flight. Implementations never throw: trouble is a miss. */
export interface SharedTier {
  begin(id: string): Promise<SharedBegin>
  /** publishes an upstream result (if any) and releases the lock; returns at once */
  finish(id: string, token: string | undefined, share: Share | undefined): void
}

/** What a task fetch answers with: a 200 task body, or an upstream 4xx answer passed through. */
export type Served =
  | { kind: 'task'; body: Buffer; etag: string; cacheControl: string; cache: CacheStatus }
  | { kind: 'answer'; answer: Answer }

/** One flight's result, shared by the leader and every request coalesced onto it. */
type Loaded =
  | { kind: 'task'; body: Buffer; etag: string; maxAgeSeconds: number | undefined; source: 'upstream' | 'shared' | 'peer' | 'stale' }
  | { kind: 'answer'; answer: Answer }

/** The miss path of GET /mj/task/:id/fetch: shared tier, upstream, policy, store, stale stand-in. */
export class TaskService {
  private readonly rules: CacheRules
  /** told of every finished task body this service takes in (the image archive, docs/images.md) */
  sawTerminal: (body: Buffer) => void = () => undefined

  constructor(
    cfg: Config['cache'],
    private readonly cache: TaskCache,
    private readonly upstream: UpstreamClient,
    private readonly metrics: GatewayMetrics,
    private readonly shared?: SharedTier
  ) {
    this.rules = { ttlSeconds: cfg.ttlSeconds, urlExpiryMarginSeconds: cfg.urlExpiryMarginSeconds, pollCacheMs: cfg.pollCacheMs }
  }

  /**
   * `mode` is the request's mode prefix ('' or `/mj-fast`…): the upstream path of a miss; the flight is the id's alone.
   * `client` is whom the upstream call is made for (its fair share of upstream connections, docs/tenancy.md §4).
   */
  async fetch(id: string, mode = '', client?: string): Promise<Served> {
    const { promise, leader } = this.cache.flight(id, () => this.load(id, mode, client))
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
    } else if (loaded.source === 'peer') {
      // another replica's upstream call, waited for through the shared tier
      cache = 'COALESCED'
      this.metrics.lookup('coalesced')
    } else {
      cache = leader ? 'MISS' : 'COALESCED'
      this.metrics.lookup(leader ? 'miss' : 'coalesced')
    }
    return { kind: 'task', body: loaded.body, etag: loaded.etag, cacheControl: cacheControlFor(loaded.maxAgeSeconds), cache }
  }

  private async load(id: string, mode: string, client: string | undefined): Promise<Loaded> {
    const shared = this.shared
    if (shared === undefined) return this.fromUpstream(id, mode, client, () => undefined)
    const begun = await shared.begin(id)
    if (begun.kind === 'hit') return this.fromShared(id, begun)
    let share: Share | undefined
    try {
      return await this.fromUpstream(id, mode, client, (s) => (share = s))
    } finally {
      shared.finish(id, begun.token, share)
    }
  }

  private fromShared(id: string, hit: Extract<SharedBegin, { kind: 'hit' }>): Loaded {
    const etag = etagOf(hit.body)
    const source = hit.from === 'peer' ? 'peer' : 'shared'
    const keep = hit.keep
    if (keep === undefined) return { kind: 'task', body: hit.body, etag, maxAgeSeconds: undefined, source }
    if (keep.terminal) this.sawTerminal(hit.body)
    this.cache.store(id, hit.body, etag, keep.terminal, keep.ttlMs, this.cache.now())
    const maxAgeSeconds = keep.terminal ? Math.floor(keep.ttlMs / 1000) : undefined
    return { kind: 'task', body: hit.body, etag, maxAgeSeconds, source }
  }

  private async fromUpstream(id: string, mode: string, client: string | undefined, publish: (share: Share) => void): Promise<Loaded> {
    let res
    try {
      res = await this.upstream.request({ method: 'GET', path: `${mode}/mj/task/${id}/fetch`, idempotent: true, client })
    } catch (err) {
      return this.standIn(id, err)
    }
    // a task is a 200: any other success is as unusable as a redirect
    const taken = takeAnswer(res, (status) => status === 200)
    if (taken.kind === 'pass') return { kind: 'answer', answer: taken.answer }
    if (taken.kind === 'unusable') return this.standIn(id, taken.error)

    const now = this.cache.now()
    const verdict = classify(res.body, id, now, this.rules)
    const etag = etagOf(res.body)
    switch (verdict.kind) {
      case 'not_found':
        this.cache.delete(id)
        throw new TaskNotFoundError(id)
      case 'bad':
        return this.standIn(id, new UpstreamBadResponseError(verdict.reason))
      case 'foreign':
        publish({ kind: 'handoff', body: res.body })
        return { kind: 'task', body: res.body, etag, maxAgeSeconds: undefined, source: 'upstream' }
      case 'live':
        this.cache.store(id, res.body, etag, false, verdict.ttlMs, now)
        publish(verdict.ttlMs > 0 ? { kind: 'live', body: res.body, ttlMs: verdict.ttlMs } : { kind: 'handoff', body: res.body })
        return { kind: 'task', body: res.body, etag, maxAgeSeconds: undefined, source: 'upstream' }
      case 'terminal': {
        this.sawTerminal(res.body)
        if (verdict.ttlMs === 0) {
          this.cache.delete(id)
          publish({ kind: 'handoff', body: res.body })
          return { kind: 'task', body: res.body, etag, maxAgeSeconds: undefined, source: 'upstream' }
        }
        this.cache.store(id, res.body, etag, true, verdict.ttlMs, now)
        publish({ kind: 'terminal', body: res.body, ttlMs: verdict.ttlMs })
        return { kind: 'task', body: res.body, etag, maxAgeSeconds: Math.floor(verdict.ttlMs / 1000), source: 'upstream' }
      }
    }
  }

  /**
   * docs/caching.md §5: a last-known 200 stands in for an upstream *failure* (every caller passes one: 5xx, timeout,
   * unreachable, bad body); upstream *answers* (4xx, 401/403, unknown id) never come here.
   */
  private standIn(id: string, err: unknown): Loaded {
    const last = this.cache.lastKnown(id, this.cache.now())
    if (last === undefined) throw err
    return { kind: 'task', body: last.body, etag: last.etag, maxAgeSeconds: undefined, source: 'stale' }
  }
}
