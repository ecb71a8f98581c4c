import type { FastifyBaseLogger } from 'fastify'
import type { UpstreamClient } from '../upstream/client.js'
import { listTasks } from './list-tasks.js'
import { MAX_LIST_IDS } from '../routes/passthrough.js'
import type { WatchHub } from './watch-hub.js'

export type RefreshOutcome = 'ok' | 'error'

export interface RefresherOptions {
  hub: WatchHub
  upstream: UpstreamClient
  intervalMs: number
  log: FastifyBaseLogger
  /** one per list-by-condition call */
  count: (outcome: RefreshOutcome) => void
  /**
   * An id the upstream's list left out: asked once by /fetch (the miss path), which tells the hub when the task
   * is really unknown. Some relays list only recent tasks; a task is never declared gone on a list's word alone.
   */
  confirm: (id: string) => Promise<void>
  /** with Redis: whether this replica is the one that refreshes now (default: always) */
  leader?: () => Promise<boolean>
  /** with Redis: ids subscribers on other replicas watch, and where to send what changed */
  relay?: { before(now: number): Promise<void>; changed(id: string, body: Buffer): void }
}

/** failures in a row back the loop off this far at most */
const MAX_BACKOFF_MS = 30_000

/** callbacks that arrive within this long of each other are refreshed in one call */
export const SOON_GATHER_MS = 20
/**
 * and callbacks cost at most one call per this long (each up to 100 ids): anyone who learnt the callback URL could
 * otherwise make the gateway call the upstream as often as they post
 */
export const SOON_MIN_GAP_MS = 250

/**
 * The one background loop of CONTRACT §11: every REFRESH_INTERVAL_MS it asks the upstream for every watched live
 * task that is due (WatchHub.due: adaptive), up to 100 ids per list-by-condition call, and hands each answer to the
 * hub. Upstream failures back it off (doubling, up to 30 s) and never end a stream; the loop itself never throws.
 */
export class Refresher {
  private timer: NodeJS.Timeout | undefined
  private readonly soonIds = new Set<string>()
  private soonTimer: NodeJS.Timeout | undefined
  private lastSoon = 0
  private failures = 0
  private resumeAt = 0
  /** the rounds and the callbacks' refreshes, one after another: an older answer never lands after a newer one */
  private queue: Promise<void> = Promise.resolve()
  private roundQueued: Promise<void> | undefined
  private stopped = false

  constructor(private readonly opts: RefresherOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    clearTimeout(this.soonTimer)
    await this.queue
  }

  /**
   * Refreshes `id` from the upstream now (within SOON_GATHER_MS, with any other id asked meanwhile), on this replica
   * whether it leads or not: an upstream callback says the task changed (docs/push.md §5), but what changed is read
   * from the upstream, never taken from the callback's body.
   */
  soon(id: string): void {
    this.soonIds.add(id)
    if (this.soonTimer !== undefined) return
    const delay = Math.max(SOON_GATHER_MS, this.lastSoon + SOON_MIN_GAP_MS - Date.now())
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined
      this.lastSoon = Date.now()
      const ids = [...this.soonIds]
      this.soonIds.clear()
      void this.enqueue(() => this.refreshNow(ids))
    }, delay)
    this.soonTimer.unref()
  }

  /** One round (the timer calls it; tests may too). Rounds never overlap, nor pile up. */
  tick(): Promise<void> {
    this.roundQueued ??= this.enqueue(() => this.round()).finally(() => (this.roundQueued = undefined))
    return this.roundQueued
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(job)
    return this.queue
  }

  /** the callbacks' ids; while the upstream fails (backing off), left to the round after the backoff */
  private async refreshNow(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length && !this.stopped && Date.now() >= this.resumeAt; i += MAX_LIST_IDS) await this.refresh(ids.slice(i, i + MAX_LIST_IDS))
  }

  private async round(): Promise<void> {
    const now = Date.now()
    if (this.stopped || now < this.resumeAt) return
    const { hub, leader, relay } = this.opts
    let leading = true
    try {
      if (leader !== undefined) leading = await leader()
      if (leading) await relay?.before(now)
    } catch (err) {
      this.opts.log.warn({ reason: (err as Error).message }, 'refresher: redis coordination failed; refreshing from this replica')
    }
    // due() also forgets the tasks nobody watches any more: on every replica, the one refreshing or not
    const ids = hub.due(now)
    if (!leading) return
    for (let i = 0; i < ids.length && !this.stopped; i += MAX_LIST_IDS) {
      if (!(await this.refresh(ids.slice(i, i + MAX_LIST_IDS)))) return
    }
  }

  /** One list-by-condition call; false when it failed (the rest of the round waits for the backoff). */
  private async refresh(ids: string[]): Promise<boolean> {
    let bodies: Map<string, Buffer>
    try {
      bodies = await listTasks(this.opts.upstream, ids)
    } catch (err) {
      this.opts.count('error')
      this.failures++
      const backoff = Math.min(MAX_BACKOFF_MS, this.opts.intervalMs * 2 ** this.failures)
      this.resumeAt = Date.now() + backoff
      this.opts.log.warn({ reason: (err as Error).message, backoffMs: backoff }, 'refresher: upstream list failed; backing off')
      return false
    }
    this.opts.count('ok')
    this.failures = 0
    const now = Date.now()
    for (const id of ids) {
      const body = bodies.get(id)
      if (body === undefined) {
        void this.opts.confirm(id).catch(() => undefined)
        continue
      }
      if (this.opts.hub.apply(id, body, now)) this.opts.relay?.changed(id, body)
    }
    return true
  }
}
