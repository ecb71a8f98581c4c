import type { IncomingMessage } from 'node:http'
import type { ClientIdentity } from '../clients/client-keys.js'
import type { HeaderList } from '../http/header-list.js'

/** One key's count in the current window, and the milliseconds left of that window. */
export interface Count {
  current: number
  ttl: number
}

export type CountCallback = (error: Error | null, count?: Count) => void

/** Where counts live: this process's memory (memory-store.ts) or Redis (redis-store.ts). */
export interface Store {
  /** adds one to `key`'s count in its fixed window of `windowMs`; may call back at once or later */
  incr(key: string, cb: CountCallback, windowMs: number): void
}

export const RATE_LIMIT_WINDOW_MS = 60_000

/** What a request is counted under: the token's name when a valid token came with it, else its IP. */
export function rateLimitKey(client: ClientIdentity, ip: string | undefined): string {
  return client.name === undefined ? `ip:${ip}` : `client:${client.name}`
}

/** The verdict on one request: its x-ratelimit-* headers, and whether it is over the limit (429). */
export interface Admission {
  readonly over: boolean
  /** seconds until the window resets: x-ratelimit-reset, and retry-after when over */
  readonly resetSeconds: number
  readonly headers: Readonly<HeaderList>
}

const ADMISSION = Symbol('mjgw.rateLimitAdmission')
type Counted = IncomingMessage & { [ADMISSION]?: Admission | null }

/**
 * RATE_LIMIT_PER_MINUTE: one fixed window per key, counted in one store by the hit lane and the /mj routes alike.
 * A request is counted once, whichever asks first: the lane counts before it looks at the cache, and a request it
 * then leaves to Fastify gets the same verdict there (so a 429 or a miss is not counted twice).
 */
export class RateLimitCounter {
  constructor(
    private readonly store: Store,
    readonly max: number,
    readonly windowMs = RATE_LIMIT_WINDOW_MS
  ) {}

  /**
   * The request's admission, counted on first ask; `null` when the store failed, and then the request is served
   * unlimited (a store in trouble degrades the limit, never the service). The callback may run at once or later.
   */
  admit(req: IncomingMessage, key: () => string, cb: (admission: Admission | null) => void): void {
    const seen = (req as Counted)[ADMISSION]
    if (seen !== undefined) return cb(seen)
    this.store.incr(
      key(),
      (err, count) => {
        const admission = err === null && count !== undefined ? this.judge(count) : null
        ;(req as Counted)[ADMISSION] = admission
        cb(admission)
      },
      this.windowMs
    )
  }

  private judge(count: Count): Admission {
    const resetSeconds = Math.ceil(count.ttl / 1000)
    const headers: HeaderList = [
      'x-ratelimit-limit',
      this.max,
      'x-ratelimit-remaining',
      Math.max(0, this.max - count.current),
      'x-ratelimit-reset',
      resetSeconds
    ]
    return { over: count.current > this.max, resetSeconds, headers }
  }
}
