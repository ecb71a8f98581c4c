import { classify, type CacheRules } from '../cache/policy.js'
import { etagOf, type TaskCache } from '../cache/task-cache.js'
import type { TerminalStore } from '../tasks/list-service.js'
import { taskState, type TaskState } from './task-state.js'

/** One open events stream's view of a task. */
export interface TaskListener {
  /** a new state: status, progress or imageUrl changed (body = the upstream bytes) */
  update(id: string, body: Buffer, state: TaskState): void
  /** the task became unknown upstream */
  gone(id: string): void
}

/** Where a task body came from: the refresher, the upstream's callback, another replica, or a /fetch miss. */
export type Origin = 'refresh' | 'notify' | 'peer' | 'fetch'

interface Watched {
  readonly id: string
  body: Buffer | undefined
  state: TaskState | undefined
  readonly listeners: Set<TaskListener>
  /** watched without a listener until then: a /fetch here, or (Redis) a subscriber on another replica */
  watchedUntil: number
  changedAt: number
  /** the refresher asks for it again from then on */
  dueAt: number
}

export interface WatchHubOptions {
  cache: TaskCache
  rules: CacheRules
  intervalMs: number
  /** WATCH_IDLE_SECONDS in ms; 0 = a /fetch does not make a task watched */
  watchIdleMs: number
  /** the shared tier's terminal tasks (Redis), fed like the memory cache */
  shared?: TerminalStore | undefined
  /** a task's terminal state arrived (refresh, callback, peer): its images are archived as on the fetch path (docs/images.md §3) */
  sawTerminal?: (body: Buffer) => void
}

/**
 * Adaptive refresh: a task that changed in the last 10 s is asked every interval, one unchanged for 10–30 s every
 * second interval, one unchanged longer (a queued task) every fourth. Progress moves every few seconds while a task
 * runs, so only waiting tasks slow down; with the default interval none waits more than 4 s, under the 5 s at which
 * frontends poll, and an upstream callback (PUBLIC_URL) brings a change at once anyway.
 */
export function refreshPeriods(unchangedMs: number): number {
  if (unchangedMs < 10_000) return 1
  return unchangedMs < 30_000 ? 2 : 4
}

/**
 * The live tasks someone watches, their last known state, and who listens to them. Every new body (refresher,
 * callback, peer replica) goes through apply(): it feeds the task cache, so /fetch answers watched tasks from the
 * refresh, and tells the listeners when status, progress or imageUrl changed.
 */
export class WatchHub {
  private readonly tasks = new Map<string, Watched>()

  constructor(private readonly opts: WatchHubOptions) {}

  private entry(id: string, now: number): Watched {
    let w = this.tasks.get(id)
    if (w === undefined) {
      w = { id, body: undefined, state: undefined, listeners: new Set(), watchedUntil: 0, changedAt: now, dueAt: now }
      this.tasks.set(id, w)
    }
    return w
  }

  /** A /fetch answered a live task (the route and the hit lane both call this). */
  fetched(id: string, now: number): void {
    if (this.opts.watchIdleMs > 0) this.watchUntil(id, now + this.opts.watchIdleMs, now)
  }

  /** Watched (without a listener here) until `until`: a /fetch, or a subscriber on another replica. */
  watchUntil(id: string, until: number, now: number): void {
    const w = this.entry(id, now)
    if (until > w.watchedUntil) w.watchedUntil = until
  }

  /**
   * Starts telling `listener` about `id`, whose current body (a task object with that id: the route checked it) is
   * `body`; returns what the hub now holds, which is newer when another subscriber or the refresher got there first.
   */
  subscribe(id: string, listener: TaskListener, body: Buffer, state: TaskState, now: number): { body: Buffer; state: TaskState } {
    const w = this.entry(id, now)
    w.listeners.add(listener)
    if (w.state === undefined) {
      w.body = body
      w.state = state
      this.schedule(w, now)
    }
    return { body: w.body as Buffer, state: w.state }
  }

  /** tasks held: watched, or forgotten at the next round */
  get size(): number {
    return this.tasks.size
  }

  /** the body the hub holds for a task it watches (the refresher keeps it current), if any */
  known(id: string): Buffer | undefined {
    return this.tasks.get(id)?.body
  }

  unsubscribe(id: string, listener: TaskListener): void {
    const w = this.tasks.get(id)
    if (w === undefined) return
    w.listeners.delete(listener)
  }

  /** a live task someone here watches */
  watched(id: string, now: number): boolean {
    const w = this.tasks.get(id)
    return w !== undefined && w.state?.terminal !== true && (w.listeners.size > 0 || w.watchedUntil > now)
  }

  /** ids of tasks with a listener on this replica (the Redis relay announces them to the refreshing replica) */
  listened(): string[] {
    const out: string[] = []
    for (const w of this.tasks.values()) if (w.listeners.size > 0) out.push(w.id)
    return out
  }

  /** Live watched tasks due for a refresh; forgets tasks nobody watches any more. */
  due(now: number): string[] {
    const out: string[] = []
    for (const w of this.tasks.values()) {
      if (w.listeners.size === 0 && w.watchedUntil <= now) {
        this.tasks.delete(w.id)
        continue
      }
      if (w.state?.terminal !== true && w.dueAt <= now) out.push(w.id)
    }
    return out
  }

  /**
   * A new body for `id`. Ignored unless the task is watched and the body is a task object with that id.
   * Returns true when it changed what subscribers know (they have been told).
   */
  apply(id: string, body: Buffer, now: number): boolean {
    const w = this.tasks.get(id)
    const state = taskState(body)
    if (w === undefined || state === undefined || state.id !== id) return false
    // a terminal state is final: an older callback replayed after it changes nothing
    if (w.state?.terminal === true) return false
    const changed = w.state?.version !== state.version
    if (changed) w.changedAt = now
    w.body = body
    w.state = state
    this.schedule(w, now)
    this.feedCache(w, body, now)
    if (!changed) return false
    for (const l of [...w.listeners]) l.update(id, body, state)
    return true
  }

  /** The task is unknown upstream: every listener is told, and it is no longer watched. */
  gone(id: string): void {
    const w = this.tasks.get(id)
    if (w === undefined) return
    this.tasks.delete(id)
    for (const l of [...w.listeners]) l.gone(id)
  }

  private schedule(w: Watched, now: number): void {
    const interval = this.opts.intervalMs
    // half an interval early, so the tick that comes around then takes it
    w.dueAt = now + refreshPeriods(now - w.changedAt) * interval - interval / 2
  }

  /** the refreshed body, fresh for /fetch until the refresh after next is due */
  private feedCache(w: Watched, body: Buffer, now: number): void {
    const { cache, rules, shared } = this.opts
    const verdict = classify(body, w.id, now, rules)
    if (verdict.kind === 'terminal') {
      this.opts.sawTerminal?.(body)
      if (verdict.ttlMs === 0) {
        cache.delete(w.id)
        return
      }
      cache.store(w.id, body, etagOf(body), true, verdict.ttlMs, now)
      shared?.set(w.id, body, verdict.ttlMs)
      return
    }
    cache.store(w.id, body, etagOf(body), false, Math.max(rules.pollCacheMs, w.dueAt - now + this.opts.intervalMs), now)
  }
}
