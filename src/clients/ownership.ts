import { LRUCache } from 'lru-cache'
import type { ClientIdentity } from './client-keys.js'
import { TaskNotFoundError } from '../http/errors.js'

/**
 * Where owner records live (Redis with REDIS_URL, else the embedded store under DATA_DIR). A lookup may answer at
 * once (SQLite) or later (Redis); a failure throws or rejects, and the caller then denies.
 */
export interface OwnerRecords {
  /** the owner of each id, in order; undefined = no record */
  owners(ids: readonly string[]): ReadonlyArray<string | undefined> | Promise<ReadonlyArray<string | undefined>>
  /** records `owner` unless the task has one already (first record wins); returns that earlier owner (null, undefined: none) */
  record(id: string, owner: string, ttlMs: number): string | null | undefined | Promise<string | null | undefined>
}

export interface OwnershipOptions {
  /** TASK_OWNERSHIP resolved; off = every client reads every task */
  enabled: boolean
  /** OWNERLESS_TASKS=visible: a task without a record may be read by anyone */
  ownerlessVisible: boolean
  /** OWNERSHIP_TTL_DAYS in ms */
  ttlMs: number
  store: OwnerRecords
  /** a denial, by route (mj_gateway_ownership_denied_total) */
  onDenied: (route: string) => void
  /** a store failure, answered by denying (fails closed) */
  onStoreError: (err: unknown) => void
  /** owners held in memory in front of the store (the hit lane reads them without waiting) */
  memoryEntries?: number
}

const MEMORY_ENTRIES = 200_000

/**
 * Task ownership (CONTRACT §9). The one rule every route that shows a task calls: fetch (hit lane and Fastify
 * route), image-seed, list-by-condition, submits naming a `taskId`, and any later route (events, images).
 *
 * Usage: `ownership.canRead(client, id)` answers `true`/`false` at once when it can (ownership off, an `:all`
 * client, an owner known in memory, the embedded store) and a Promise otherwise (Redis). A route that answers
 * the denial calls `await ownership.assertReadable(client, id, route)` instead: it throws the very error an
 * unknown id gets (404 MJGW_TASK_NOT_FOUND) and counts the denial. Neither ever asks upstream.
 */
export class Ownership {
  readonly enabled: boolean
  private readonly memo: LRUCache<string, string>

  constructor(private readonly opts: OwnershipOptions) {
    this.enabled = opts.enabled
    // Records are never taken back, only added, so a remembered owner stays right until the record expires.
    this.memo = new LRUCache({ max: opts.memoryEntries ?? MEMORY_ENTRIES, ttl: opts.ttlMs, ttlAutopurge: false })
  }

  /** May `client` see task `id`? Synchronous whenever the answer is at hand. Never rejects. */
  canRead(client: ClientIdentity, id: string): boolean | Promise<boolean> {
    if (!this.enabled || client.all) return true
    const known = this.memo.get(id)
    if (known !== undefined) return known === client.owner
    let found: ReadonlyArray<string | undefined> | Promise<ReadonlyArray<string | undefined>>
    try {
      found = this.opts.store.owners([id])
    } catch (err) {
      return this.failed(err)
    }
    if (Array.isArray(found)) return this.decide(client, id, found[0])
    return (found as Promise<ReadonlyArray<string | undefined>>).then(
      (owners) => this.decide(client, id, owners[0]),
      (err: unknown) => this.failed(err)
    )
  }

  /** Throws (404 MJGW_TASK_NOT_FOUND, as for an unknown id) when `client` may not see `id`, and counts it under `route`. */
  assertReadable(client: ClientIdentity, id: string, route: string): void | Promise<void> {
    const verdict = this.canRead(client, id)
    if (verdict === true) return
    if (verdict === false) this.deny(id, route)
    return verdict.then((ok) => {
      if (!ok) this.deny(id, route)
    })
  }

  /** The ids `client` may see, in order (list-by-condition leaves the others out); denials counted under `route`. */
  async readable(client: ClientIdentity, ids: readonly string[], route: string): Promise<string[]> {
    if (!this.enabled || client.all) return [...ids]
    const unknown = ids.filter((id) => !this.memo.has(id))
    let owners: ReadonlyArray<string | undefined> = []
    let failed = false
    if (unknown.length > 0) {
      try {
        owners = await this.opts.store.owners(unknown)
      } catch (err) {
        this.opts.onStoreError(err)
        failed = true
      }
    }
    const fromStore = new Map(unknown.map((id, i) => [id, owners[i]]))
    const out: string[] = []
    for (const id of ids) {
      let ok: boolean
      const known = this.memo.get(id)
      if (known !== undefined) ok = known === client.owner
      else ok = !failed && this.decide(client, id, fromStore.get(id))
      if (ok) out.push(id)
      else this.opts.onDenied(route)
    }
    return out
  }

  /**
   * Records that `client` submitted task `id`, unless the task has an owner already: a submit answered "already
   * exists" (code 21, `existing`) names an existing task, which stays its first owner's. Written to the store, then
   * remembered (the route waits for this before answering, so the owner's first poll finds it on this replica). A
   * failed write is reported and leaves other replicas denying (fails closed); this replica remembers the submitter
   * only for a new task, as the store cannot say whose an existing one is.
   */
  async record(client: ClientIdentity, id: string, existing = false): Promise<void> {
    if (!this.enabled || this.memo.has(id)) return
    let earlier: string | null | undefined
    try {
      earlier = await this.opts.store.record(id, client.owner, this.opts.ttlMs)
    } catch (err) {
      this.opts.onStoreError(err)
      if (existing) return
    }
    this.memo.set(id, earlier ?? client.owner)
  }

  private decide(client: ClientIdentity, id: string, owner: string | undefined): boolean {
    if (owner === undefined) return this.opts.ownerlessVisible
    this.memo.set(id, owner)
    return owner === client.owner
  }

  private failed(err: unknown): false {
    this.opts.onStoreError(err)
    return false
  }

  private deny(id: string, route: string): never {
    this.opts.onDenied(route)
    throw new TaskNotFoundError(id)
  }
}

/**
 * The task a submit answer names (CONTRACT §9): `result` of an answer whose `code` is 1, 21 or 22, else undefined.
 * `existing`: code 21, "already exists", names a task submitted before (maybe by another client).
 */
export function submittedTask(body: Buffer): { id: string; existing: boolean } | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  if (parsed === null || typeof parsed !== 'object') return undefined
  const { code, result } = parsed as { code?: unknown; result?: unknown }
  if (code !== 1 && code !== 21 && code !== 22) return undefined
  const existing = code === 21
  if (typeof result === 'string' && result !== '') return { id: result, existing }
  if (typeof result === 'number' && Number.isSafeInteger(result) && result >= 0) return { id: String(result), existing }
  return undefined
}
