import type { ClientIdentity } from './client-keys.js'

/** Counts submits per client and UTC day; `increment` answers the count including this one. */
export interface QuotaStore {
  increment(client: string, day: string, ttlMs: number): number | Promise<number>
}

const DAY_MS = 86_400_000

/** the UTC day a moment falls in, as YYYY-MM-DD */
export function utcDay(nowMs: number): string {
  return new Date(nowMs).toISOString().slice(0, 10)
}

/**
 * SUBMIT_QUOTA_PER_DAY (CONTRACT §9): submits per client per UTC day, counted in Redis or the embedded store so
 * replicas and restarts share the count. A store failure lets the submit through (a quota outage must not stop
 * every team) and is reported.
 */
export class SubmitQuota {
  constructor(
    private readonly perDay: number,
    private readonly store: QuotaStore,
    private readonly onStoreError: (err: unknown) => void
  ) {}

  /** counts one submit; false when it is over the day's quota */
  async admit(client: ClientIdentity, nowMs = Date.now()): Promise<boolean> {
    try {
      // counted under the owner, so every JWT user has a quota of their own
      const count = await this.store.increment(client.owner, utcDay(nowMs), 2 * DAY_MS)
      return count <= this.perDay
    } catch (err) {
      this.onStoreError(err)
      return true
    }
  }

  /** seconds until the next UTC day, for retry-after */
  static secondsToNextDay(nowMs = Date.now()): number {
    return Math.max(1, Math.ceil((DAY_MS - (nowMs % DAY_MS)) / 1000))
  }
}
