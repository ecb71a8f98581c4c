import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'

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

/**
 * The body in memory of its own, exactly its size. An upstream body is a view into the socket read it arrived in
 * (status line and headers included); kept as is, that whole allocation would live as long as the entry.
 */
function compact(body: Buffer): Buffer {
  if (body.byteOffset === 0 && body.buffer.byteLength === body.length) return body
  const own = Buffer.allocUnsafeSlow(body.length)
  body.copy(own)
  return own
}

export interface TaskCacheOptions {
  maxBytes: number
  staleIfErrorMs: number
  onEvict?: () => void
}

/**
 * The in-process tier: lru-cache bounded by body bytes, plus the single-flight table.
 * An entry outlives its freshness by the stale-if-error window, so it can stand in when upstream fails.
 */
export class TaskCache {
  private readonly lru: LRUCache<string, Entry>
  private readonly flights = new Map<string, Promise<unknown>>()
  private readonly staleIfErrorMs: number

  constructor(opts: TaskCacheOptions) {
    this.staleIfErrorMs = opts.staleIfErrorMs
    const onEvict = opts.onEvict
    this.lru = new LRUCache<string, Entry>({
      maxSize: opts.maxBytes,
      sizeCalculation: (e) => e.body.length || 1,
      ttl: 1,
      ttlAutopurge: false,
      ...(onEvict === undefined
        ? {}
        : {
            dispose: (_v: Entry, _k: string, reason: LRUCache.DisposeReason) => {
              if (reason === 'evict') onEvict()
            }
          })
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
    const entry: Entry = { body: compact(body), etag, terminal, storedAt: now, freshUntil: now + freshMs }
    this.lru.set(key, entry, { ttl: keepMs })
    return entry
  }

  delete(key: string): void {
    this.lru.delete(key)
  }

  /**
   * Single-flight: concurrent callers with one key share one call of `load`.
   * lru-cache's own fetch() coalesces too, but it cannot hand waiters a result it must not store
   * (another task's body, an upstream 404), and CONTRACT §5.4 coalesces those as well.
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

  clear(): void {
    this.lru.clear()
  }
}
