import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { BodySlabs, type BodyHolder, type Slab } from './body-slabs.js'

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8'

/** A response ready to send: bytes, etag and headers computed once, when it was stored. */
export interface Entry {
  readonly body: Buffer
  readonly etag: string
  readonly terminal: boolean
  readonly storedAt: number
  /** reusable for other pollers until then (ms since epoch) */
  readonly freshUntil: number
}

export function etagOf(body: Buffer): string {
  return `"${createHash('sha1').update(body).digest('base64url')}"`
}

/** The entry as the cache holds it: its body lives in the cache's slabs (body-slabs.ts), which may move it. */
class StoredEntry implements Entry, BodyHolder {
  body = EMPTY
  slab: Slab | undefined = undefined

  constructor(
    readonly etag: string,
    readonly terminal: boolean,
    readonly storedAt: number,
    readonly freshUntil: number
  ) {}
}

const EMPTY = Buffer.alloc(0)

/** Milliseconds since the epoch; tests pass one they move by hand instead of sleeping. */
export interface Clock {
  now(): number
}

export interface TaskCacheOptions {
  maxBytes: number
  staleIfErrorMs: number
  onEvict?: () => void
  /** the time freshness and expiry are judged by; default Date.now (and lru-cache's own performance.now) */
  clock?: Clock
}

/**
 * The in-process tier: lru-cache bounded by body bytes, plus the single-flight table.
 * An entry outlives its freshness by the stale-if-error window, so it can stand in when upstream fails.
 */
export class TaskCache {
  private readonly lru: LRUCache<string, StoredEntry>
  private readonly bodies = new BodySlabs()
  private readonly flights = new Map<string, Promise<unknown>>()
  private readonly staleIfErrorMs: number
  /** the current time by the cache's clock: every caller judging freshness asks here */
  readonly now: () => number

  constructor(opts: TaskCacheOptions) {
    this.staleIfErrorMs = opts.staleIfErrorMs
    const onEvict = opts.onEvict
    const clock = opts.clock
    this.now = clock === undefined ? Date.now : () => clock.now()
    this.lru = new LRUCache<string, StoredEntry>({
      // a hand-moved clock is read on every check: lru-cache's 1 ms reuse of the last reading would hide a move
      ...(clock === undefined ? {} : { perf: clock, ttlResolution: 0 }),
      maxSize: opts.maxBytes,
      sizeCalculation: (e) => e.body.length || 1,
      ttl: 1,
      ttlAutopurge: false,
      // whatever takes an entry out (evicted, replaced, deleted, expired), its body's room is given back
      dispose: (e: StoredEntry, _k: string, reason: LRUCache.DisposeReason) => {
        this.bodies.release(e)
        if (reason === 'evict') onEvict?.()
      }
    })
  }

  /** The hit path: a fresh entry or nothing. */
  fresh(key: string, now: number): Entry | undefined {
    const e = this.lru.get(key)
    return e !== undefined && now < e.freshUntil ? e : undefined
  }

  /** A last-known response young enough to stand in for a failed upstream call. */
  lastKnown(key: string, now: number): Entry | undefined {
    const e = this.lru.get(key)
    return e !== undefined && now - e.storedAt < this.staleIfErrorMs ? e : undefined
  }

  /** Stores a response fresh for freshMs (0: only as a stand-in), and returns the entry. */
  store(key: string, body: Buffer, etag: string, terminal: boolean, freshMs: number, now: number): Entry | undefined {
    // A terminal entry's life may be cut short by its imageUrl's expiry: it never stands in past that.
    const keepMs = terminal ? freshMs : Math.max(freshMs, this.staleIfErrorMs)
    if (keepMs <= 0) {
      this.lru.delete(key)
      return undefined
    }
    const entry = new StoredEntry(etag, terminal, now, now + freshMs)
    // copied: an upstream body is a view into the socket read it arrived in, which must not live on with it
    this.bodies.put(entry, body)
    this.lru.set(key, entry, { ttl: keepMs })
    // a body larger than the whole cache is not kept (and lru-cache says nothing of it)
    if (this.lru.peek(key) !== entry) this.bodies.release(entry)
    return entry
  }

  /** every fresh terminal entry with its life left (copied bodies: the slabs may move them), most recent first */
  *terminal(now: number): Generator<{ id: string; body: Buffer; ttlMs: number }> {
    for (const [id, e] of this.lru.entries()) {
      if (e.terminal && now < e.freshUntil) yield { id, body: Buffer.from(e.body), ttlMs: e.freshUntil - now }
    }
  }

  delete(key: string): void {
    this.lru.delete(key)
  }

  /**
   * Single-flight: concurrent callers with one key share one call of `load`.
   * lru-cache's own fetch() coalesces too, but it cannot hand waiters a result it must not store
   * (another task's body, an upstream 404), and docs/caching.md §4 coalesces those as well.
   */
  flight<T>(key: string, load: () => Promise<T>): { promise: Promise<T>; leader: boolean } {
    const running = this.flights.get(key) as Promise<T> | undefined
    if (running !== undefined) return { promise: running, leader: false }
    const promise = load().finally(() => this.flights.delete(key))
    this.flights.set(key, promise)
    return { promise, leader: true }
  }

  /** Read at scrape time: expired entries are dropped first (as expired, not counted as evictions). */
  get entries(): number {
    this.lru.purgeStale()
    return this.lru.size
  }

  get bytes(): number {
    this.lru.purgeStale()
    return this.lru.calculatedSize
  }

  /** slabs holding bodies (body-slabs.ts) */
  get slabs(): number {
    return this.bodies.slabs
  }

  clear(): void {
    this.lru.clear()
  }
}
