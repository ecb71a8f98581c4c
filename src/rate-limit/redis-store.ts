import type { Result } from 'ioredis'
import type { RedisConnection } from '../redis/connection.js'
import type { CountCallback, Store } from './counter.js'

/** Counts are reported to Redis at least this often (and sooner, see SyncedRateLimitStore). */
export const RATE_LIMIT_SYNC_MS = 100
/** at most this many clients' counts in one Redis call */
const SYNC_BATCH = 500

// KEYS: one counter per client and window; ARGV: the increments in KEYS' order, then the keys' lifetime (ms).
const SYNC = `
local px = ARGV[#KEYS + 1]
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[i])
  redis.call('PEXPIRE', KEYS[i], px)
end
return out
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    mjgwRateSync(numKeys: number, ...keysThenArgs: (string | number)[]): Result<number[], Context>
  }
}

/** a client's key, its count, and how many of its requests this report carries */
type Reported = [string, Count, number]

interface Count {
  /** the window (its start, ms) this count belongs to */
  readonly window: number
  /** every replica's requests in the window, as Redis last said (never lowered: a Redis that lost it is not believed) */
  shared: number
  /** this replica's requests not yet reported */
  pending: number
  /** this replica's requests being reported right now */
  reporting: number
  /**
   * Requests that came after the client's first in this window, while the first report was on its way: answered
   * once it is back (or has failed), so a replica that has not heard of a client yet admits at most its first
   * request. `undefined` once the first report is back.
   */
  waiting?: CountCallback[]
}

export interface SyncedStoreOptions {
  /** the upstream key's fingerprint: gateways with different keys count apart */
  namespace: string
  /** RATE_LIMIT_PER_MINUTE */
  max: number
  windowMs: number
  /** tests set the clock */
  now?: () => number
  syncMs?: number
}

/**
 * RATE_LIMIT_PER_MINUTE shared by every replica through Redis, without a Redis round trip on a request (one
 * exception, below): each replica decides from its own count (what Redis last said for all replicas plus its own
 * requests since) and reports its requests in the background, at least every RATE_LIMIT_SYNC_MS, at once when it
 * sees a client for the first time in a window, and as soon as a client has used 5 % of the limit since the last
 * report. The answer to each report is the count over all replicas. Windows are fixed minutes of the wall clock,
 * the same on every replica.
 *
 * Tolerance (README): across N replicas, a client can get through at most (N − 1) × (5 % of the limit + what it
 * sends one replica during one report) more than the limit in a window; on one replica the limit is exact.
 * A client new to a replica in a window is the exception to "no round trip": its first request is answered at once,
 * and what it sends while that first report is under way waits for the report (at most COMMAND_TIMEOUT_MS), so a
 * replica that starts while a client is over its limit admits at most that client's first request.
 * While Redis is down or hangs (the connection's breaker), each replica goes on counting from what it knows and
 * reports its counts when Redis is back: a client over its limit stays over it, and a Redis that restarts empty
 * does not lower a count a replica has seen.
 */
export class SyncedRateLimitStore implements Store {
  private counts = new Map<string, Count>()
  private window = -1
  private readonly prefix: string
  private readonly early: number
  private readonly now: () => number
  private readonly timer: NodeJS.Timeout
  private soon = false
  /** counts whose first report is not back yet (see Count.waiting) */
  private readonly firstReports = new Set<Count>()

  constructor(
    private readonly redis: RedisConnection,
    private readonly opts: SyncedStoreOptions
  ) {
    this.prefix = `mjgw:${opts.namespace}:rl:`
    this.early = Math.max(1, Math.ceil(opts.max / 20))
    this.now = opts.now ?? Date.now
    redis.client.defineCommand('mjgwRateSync', { lua: SYNC })
    this.timer = setInterval(() => void this.sync(), opts.syncMs ?? RATE_LIMIT_SYNC_MS)
    this.timer.unref()
  }

  incr(key: string, cb: CountCallback): void {
    const now = this.now()
    const { windowMs } = this.opts
    const window = now - (now % windowMs)
    if (window !== this.window) {
      // a new minute: last minute's counts (reported or not) decide nothing any more; requests still waiting for
      // a first report of last minute are judged on what this replica knows of it
      this.releaseAll()
      this.window = window
      this.counts = new Map()
    }
    let c = this.counts.get(key)
    if (c === undefined) {
      c = { window, shared: 0, pending: 0, reporting: 0 }
      this.counts.set(key, c)
      // a client new to this replica (or to this replica since a restart) may be over its limit elsewhere: its
      // next requests wait for the first report (none will come while Redis is down)
      if (this.redis.up) {
        c.waiting = []
        this.firstReports.add(c)
      }
      this.syncSoon()
    } else if (c.waiting !== undefined) {
      c.pending++
      c.waiting.push(cb)
      return
    }
    c.pending++
    if (c.pending >= this.early) this.syncSoon()
    cb(null, { current: c.shared + c.reporting + c.pending, ttl: window + windowMs - now })
  }

  /** Answers the requests that waited for `c`'s first report, each with its own place in the count. */
  private release(c: Count): void {
    const waiting = c.waiting
    if (waiting === undefined) return
    c.waiting = undefined
    this.firstReports.delete(c)
    const now = this.now()
    const ttl = Math.max(0, c.window + this.opts.windowMs - now)
    // the waiting requests are this replica's latest ones for the client
    const first = c.shared + c.reporting + c.pending - waiting.length
    waiting.forEach((cb, i) => {
      // a request's own trouble must not strand the others, nor the report that answered them
      try {
        cb(null, { current: first + i + 1, ttl })
      } catch (err) {
        this.redis.warn('rate-limit-waiting', err, 'rate limit: a request waiting for its count failed')
      }
    })
    if (c.pending >= this.early) this.syncSoon()
  }

  private releaseAll(): void {
    for (const c of this.firstReports) this.release(c)
  }

  private syncSoon(): void {
    if (this.soon) return
    this.soon = true
    setImmediate(() => {
      this.soon = false
      void this.sync()
    })
  }

  /**
   * Reports the pending counts, one Redis call per SYNC_BATCH clients, all sent at once (so a request waiting for
   * its client's first report waits for one round trip, however many clients there are); never throws. Reports may
   * overlap (an increment is an increment): a replica never waits for one report before sending the next.
   */
  async sync(): Promise<void> {
    if (this.redis.closed) {
      clearInterval(this.timer)
      this.releaseAll()
      return
    }
    if (!this.redis.up) return this.releaseAll()
    const batch: Reported[] = []
    for (const [key, c] of this.counts) {
      if (c.pending === 0) continue
      batch.push([key, c, c.pending])
      c.reporting += c.pending
      c.pending = 0
    }
    const parts: Promise<void>[] = []
    for (let i = 0; i < batch.length; i += SYNC_BATCH) parts.push(this.report(batch.slice(i, i + SYNC_BATCH)))
    await Promise.all(parts)
  }

  private async report(part: Reported[]): Promise<void> {
    const keys = part.map(([key, c]) => `${this.prefix}${c.window}:${key}`)
    let totals: number[]
    try {
      totals = await this.redis.within(this.redis.client.mjgwRateSync(keys.length, ...keys, ...part.map(([, , n]) => n), 2 * this.opts.windowMs))
    } catch (err) {
      this.redis.warn('rate-limit', err, 'redis: rate-limit counts not reported; counting on from what this replica knows')
      // reported again next time (a report that did land but timed out counts twice: the strict side)
      for (const [, c, n] of part) {
        c.reporting -= n
        c.pending += n
        this.release(c)
      }
      return
    }
    part.forEach(([, c, n], j) => {
      c.reporting -= n
      c.shared = Math.max(totals[j] as number, c.shared + n)
      this.release(c)
    })
  }
}
