import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import type { UpstreamClient } from '../upstream/client.js'
import { listedTasks } from '../upstream/json-array.js'
import { classify, type CacheRules } from '../cache/policy.js'
import { etagOf, type TaskCache } from '../cache/task-cache.js'
import { takeAnswer, type Answer } from '../upstream/answer.js'
import { LIST_PATH } from '../routes/passthrough-table.js'

export { LIST_PATH }

/** The shared tier's terminal tasks, read and written one by one (no lock: a list is not single-flighted). */
export interface TerminalStore {
  get(id: string): Promise<{ body: Buffer; ttlMs: number } | undefined>
  set(id: string, body: Buffer, ttlMs: number): void
}

/** The answer to a list-by-condition: a JSON array of tasks, or an upstream 4xx answer passed through. */
export type Listed =
  | { kind: 'list'; body: Buffer; hits: number }
  | { kind: 'answer'; answer: Answer }

/**
 * POST /mj/task/list-by-condition: ids whose terminal state is cached are answered from the cache,
 * the rest are asked upstream in one call, and terminal tasks from that answer are stored for /fetch.
 * A live (poll-cache) entry does not count as cached: it may be a second old, and a list asks for now.
 */
export class TaskListService {
  /** told of every finished task body this service takes in (the image archive, docs/images.md) */
  sawTerminal: (body: Buffer) => void = () => undefined
  /** what a task body looks like to clients (IMAGE_REWRITE); the bytes as stored when unset */
  present: ((body: Buffer, now: number) => Buffer) | undefined = undefined

  constructor(
    private readonly rules: CacheRules,
    private readonly cache: TaskCache,
    private readonly upstream: UpstreamClient,
    private readonly metrics: GatewayMetrics,
    private readonly shared?: TerminalStore
  ) {}

  /**
   * `ids` are already valid; duplicates are answered once, at their first position. `mode` is the request's mode
   * prefix ('' or `/mj-fast`…): the upstream call goes there, the cache is shared.
   */
  async list(ids: readonly string[], mode = ''): Promise<Listed> {
    const wanted = [...new Set(ids)]
    const bodies = new Map<string, Buffer>()
    const now = this.cache.now()
    let missing: string[] = []
    for (const id of wanted) {
      const e = this.cache.fresh(id, now)
      if (e?.terminal === true) {
        bodies.set(id, e.body)
        this.metrics.lookup('hit')
      } else {
        missing.push(id)
      }
    }
    if (missing.length > 0 && this.shared !== undefined) missing = await this.fromShared(this.shared, missing, bodies)
    const hits = wanted.length - missing.length
    if (missing.length > 0) {
      for (let i = 0; i < missing.length; i++) this.metrics.lookup('miss')
      const answer = await this.fromUpstream(missing, bodies, mode)
      if (answer !== undefined) return answer
    }
    const parts: Buffer[] = []
    const present = this.present
    const at = Date.now()
    for (const id of wanted) {
      const body = bodies.get(id)
      if (body !== undefined) parts.push(present === undefined ? body : present(body, at))
    }
    return { kind: 'list', body: joinArray(parts), hits }
  }

  private async fromShared(shared: TerminalStore, ids: string[], bodies: Map<string, Buffer>): Promise<string[]> {
    const found = await Promise.all(ids.map((id) => shared.get(id).catch(() => undefined)))
    const now = this.cache.now()
    const missing: string[] = []
    ids.forEach((id, i) => {
      const hit = found[i]
      if (hit === undefined) {
        missing.push(id)
        return
      }
      this.cache.store(id, hit.body, etagOf(hit.body), true, hit.ttlMs, now)
      this.sawTerminal(hit.body)
      bodies.set(id, hit.body)
      this.metrics.lookup('hit_shared')
    })
    return missing
  }

  /** Asks upstream once; fills `bodies`, or returns the upstream's 4xx answer to pass through. */
  private async fromUpstream(ids: string[], bodies: Map<string, Buffer>, mode: string): Promise<Listed | undefined> {
    const res = await this.upstream.request({
      method: 'POST',
      path: `${mode}${LIST_PATH}`,
      body: Buffer.from(JSON.stringify({ ids })),
      // a query, not a submit: safe to retry
      idempotent: true
    })
    const taken = takeAnswer(res)
    if (taken.kind === 'pass') return { kind: 'answer', answer: taken.answer }
    if (taken.kind === 'unusable') throw taken.error

    const now = this.cache.now()
    for (const [id, body] of listedTasks(res.body, ids)) {
      bodies.set(id, body)
      const verdict = classify(body, id, now, this.rules)
      if (verdict.kind !== 'terminal') continue
      this.sawTerminal(body)
      if (verdict.ttlMs === 0) {
        this.cache.delete(id)
        continue
      }
      this.cache.store(id, body, etagOf(body), true, verdict.ttlMs, now)
      this.shared?.set(id, body, verdict.ttlMs)
    }
    return undefined
  }
}

const OPEN = Buffer.from('[')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from(']')

function joinArray(parts: readonly Buffer[]): Buffer {
  const chunks: Buffer[] = [OPEN]
  parts.forEach((p, i) => {
    if (i > 0) chunks.push(COMMA)
    chunks.push(p)
  })
  chunks.push(CLOSE)
  return Buffer.concat(chunks)
}
