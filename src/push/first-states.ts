import type { UpstreamClient } from '../upstream/client.js'
import { MAX_LIST_IDS } from '../routes/passthrough.js'
import { listTasks } from './list-tasks.js'

/** how long the first subscribers' requests are gathered before the one list call for all of them */
export const GATHER_MS = 20

interface Waiter<T> {
  resolve(v: T): void
  reject(e: unknown): void
}

/**
 * The first state of tasks new subscribers ask for that the cache does not hold: gathered for GATHER_MS and asked
 * in one list-by-condition call (100 ids a call), so a crowd subscribing to many tasks costs one upstream call, not
 * one per task. A task already being loaded is not asked again: later subscribers join the load in flight. An id
 * the list leaves out, or a list that fails, goes to `single` (the /fetch miss path: one call for that id, with its
 * error mapping, its stale stand-in and its 404 for an unknown task).
 */
export class FirstStates<T> {
  private pending = new Map<string, Waiter<Buffer | T>>()
  /** every id gathered or being asked, until its answer is in */
  private readonly inflight = new Map<string, Promise<Buffer | T>>()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly upstream: UpstreamClient,
    private readonly single: (id: string) => Promise<Buffer | T>
  ) {}

  load(id: string): Promise<Buffer | T> {
    const known = this.inflight.get(id)
    if (known !== undefined) return known
    const loading = new Promise<Buffer | T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.timer ??= setTimeout(() => void this.flush(), GATHER_MS)
    })
    this.inflight.set(id, loading)
    const done = (): void => void this.inflight.delete(id)
    loading.then(done, done)
    return loading
  }

  private async flush(): Promise<void> {
    const batch = this.pending
    this.pending = new Map()
    this.timer = undefined
    const ids = [...batch.keys()]
    for (let i = 0; i < ids.length; i += MAX_LIST_IDS) {
      const chunk = ids.slice(i, i + MAX_LIST_IDS)
      const found = await listTasks(this.upstream, chunk).catch(() => new Map<string, Buffer>())
      for (const id of chunk) {
        const body = found.get(id)
        const result = body === undefined ? this.single(id) : Promise.resolve(body)
        const w = batch.get(id) as Waiter<Buffer | T>
        result.then(w.resolve, w.reject)
      }
    }
  }
}
