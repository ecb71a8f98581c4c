import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Result } from 'ioredis'
import type { Share, SharedBegin, SharedTier } from '../tasks/fetch-service.js'
import type { TerminalStore } from '../tasks/list-service.js'
import type { RedisConnection } from './connection.js'
import { classify, type CacheRules } from '../cache/policy.js'
import type { RedisRejectReason } from '../metrics/gateway-metrics.js'

/*
 * Keys, all under `mjgw:{upstream key fingerprint}:` (docs/caching.md §7), values the upstream bytes as sent:
 *   task:{id}  a terminal task, PX = its in-memory TTL
 *   poll:{id}  a live task, PX = POLL_CACHE_MS (only when > 0)
 *   lock:{id}  the cross-replica single-flight lock: a token, PX = the holder's whole upstream budget
 *   done:{id}  hash {wanted, token, body}: a waiting replica sets `wanted` to the holder's token; the holder then
 *              leaves its result there when it is nothing anyone may cache (a live task with POLL_CACHE_MS=0,
 *              a terminal task whose imageUrl is about to expire, a body for another id)
 */

// KEYS: task poll done lock; ARGV: my token, lock PX, the holder token this replica waits on ('' = none yet).
const BEGIN = `
local v = redis.call('GET', KEYS[1])
if v then
  local t = redis.call('PTTL', KEYS[1])
  if t > 0 then return {'T', v, t} end
end
v = redis.call('GET', KEYS[2])
if v then
  local t = redis.call('PTTL', KEYS[2])
  if t > 0 then return {'L', v, t} end
end
if ARGV[3] ~= '' then
  local d = redis.call('HMGET', KEYS[3], 'token', 'body')
  if d[1] == ARGV[3] then return {'D', d[2]} end
end
local holder = redis.call('GET', KEYS[4])
if holder then
  redis.call('HSET', KEYS[3], 'wanted', holder)
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  return {'W', holder}
end
if ARGV[3] ~= '' then return {'R'} end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
return {'A'}
`

// KEYS: task poll done lock; ARGV: token ('' = no lock held), kind (T L D or ''), body, PX.
const FINISH = `
if ARGV[2] == 'T' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == 'L' then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == 'D' and redis.call('HGET', KEYS[3], 'wanted') == ARGV[1] then
  redis.call('HSET', KEYS[3], 'token', ARGV[1], 'body', ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 1
`

type BeginReply = [Buffer, Buffer?, number?]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    mjgwBeginBuffer(
      task: string,
      poll: string,
      done: string,
      lock: string,
      token: string,
      lockPx: number,
      waitingOn: string
    ): Result<BeginReply, Context>
    mjgwFinish(task: string, poll: string, done: string, lock: string, token: string, kind: string, body: Buffer | string, px: number): Result<number, Context>
  }
}

export interface RedisSharedTierOptions {
  /** the upstream key's fingerprint: gateways with different keys never see each other's tasks */
  namespace: string
  /** how long a lock lives if its holder dies: the holder's whole upstream budget */
  lockTtlMs: number
  /** how long a replica waits for another's upstream call before it calls upstream itself */
  lockWaitMs: number
  /** the local caching rules: what Redis holds is judged by them as strictly as an upstream answer */
  rules: CacheRules
  /** a value read from Redis refused (a miss): mj_gateway_redis_values_rejected_total{reason} */
  onRejected?: (reason: RedisRejectReason) => void
  /** the memory tier's fresh terminal tasks, written back when Redis returns after an outage */
  memory?: () => Iterable<CachedTask>
  /** the clock the memory tier judges freshness by */
  now?: () => number
}


export interface CachedTask {
  id: string
  body: Buffer
  ttlMs: number
}

/** how a value read from Redis may be kept in memory, or why it is refused */
type Judged = { ok: true; keep: { terminal: boolean; ttlMs: number } | undefined } | { ok: false; reason: RedisRejectReason }

/** write-back batch: SETs per round trip */
const WRITE_BACK_BATCH = 100

// Waiting replicas look again after 5, 10, 20, 40, then every 50 ms.
const FIRST_POLL_MS = 5
const MAX_POLL_MS = 50

/** The Redis tier: terminal tasks, live tasks for POLL_CACHE_MS, and a lock per task id across replicas. */
export class RedisSharedTier implements SharedTier, TerminalStore {
  private readonly prefix: string

  private readonly now: () => number
  private wasUp = false

  constructor(
    private readonly redis: RedisConnection,
    private readonly opts: RedisSharedTierOptions
  ) {
    this.prefix = `mjgw:${opts.namespace}:`
    this.now = opts.now ?? Date.now
    redis.client.defineCommand('mjgwBegin', { numberOfKeys: 4, lua: BEGIN })
    redis.client.defineCommand('mjgwFinish', { numberOfKeys: 4, lua: FINISH })
    redis.onState((up) => {
      // back after an outage (or a restart that emptied it): what this replica served from memory meanwhile is
      // shared again, or the other replicas would miss it until it expires here
      if (up && !this.wasUp) void this.writeBack()
      this.wasUp = up
    })
  }

  /**
   * A value read from Redis, judged as an upstream answer is (docs/caching.md §1): the id must be the one asked for, a
   * task entry must be terminal and a poll entry live, and its life here is capped by the local rules
   * (CACHE_TTL_SECONDS, the imageUrl expiry, POLL_CACHE_MS) whatever TTL Redis had. A 'D' hand-off is what
   * upstream answered a peer for this request, passed on but never kept, as that answer would have been.
   */
  private judge(id: string, body: Buffer, tag: 'T' | 'L' | 'D', redisTtlMs: number): Judged {
    const v = classify(body, id, this.now(), this.opts.rules)
    let judged: Judged
    if (v.kind === 'bad' || v.kind === 'not_found') judged = { ok: false, reason: 'bad' }
    else if (tag === 'D') judged = { ok: true, keep: undefined }
    else if (v.kind === 'foreign') judged = { ok: false, reason: 'foreign' }
    else if (tag === 'T' && v.kind !== 'terminal') judged = { ok: false, reason: 'not_terminal' }
    else if (tag === 'L' && v.kind !== 'live') judged = { ok: false, reason: 'not_live' }
    else if (v.ttlMs === 0 && tag === 'T') judged = { ok: false, reason: 'expired' }
    else judged = { ok: true, keep: { terminal: tag === 'T', ttlMs: Math.min(redisTtlMs, v.ttlMs) } }
    if (!judged.ok) this.opts.onRejected?.(judged.reason)
    return judged
  }

  /** writes the memory tier's fresh terminal tasks to Redis (never over a newer value another replica wrote) */
  private async writeBack(): Promise<void> {
    const memory = this.opts.memory
    if (memory === undefined) return
    let batch = this.redis.client.pipeline()
    let queued = 0
    let written = 0
    try {
      for (const task of memory()) {
        if (!this.redis.up) return
        batch.set(this.keys(task.id)[0], task.body, 'PX', task.ttlMs, 'NX')
        if (++queued < WRITE_BACK_BATCH) continue
        await this.redis.within(batch.exec())
        written += queued
        queued = 0
        batch = this.redis.client.pipeline()
      }
      if (queued > 0) await this.redis.within(batch.exec())
      written += queued
    } catch (err) {
      this.redis.warn('write', err)
    }
    if (written > 0) this.redis.info({ tasks: written }, 'redis: cached tasks written back after an outage')
  }

  private keys(id: string): [string, string, string, string] {
    const p = this.prefix
    return [`${p}task:${id}`, `${p}poll:${id}`, `${p}done:${id}`, `${p}lock:${id}`]
  }

  async begin(id: string): Promise<SharedBegin> {
    if (!this.redis.up) return { kind: 'go', token: undefined }
    const keys = this.keys(id)
    const token = randomUUID()
    const deadline = Date.now() + this.opts.lockWaitMs
    let waitingOn = ''
    let pause = FIRST_POLL_MS
    for (;;) {
      let reply: BeginReply
      try {
        reply = await this.redis.within(this.redis.client.mjgwBeginBuffer(...keys, token, this.opts.lockTtlMs, waitingOn))
      } catch (err) {
        this.redis.warn('read', err)
        return { kind: 'go', token: undefined }
      }
      const [tag, body, ttlMs] = reply
      const from = waitingOn === '' ? 'tier' : 'peer'
      const kind = tag.toString()
      switch (kind) {
        case 'T':
        case 'L':
        case 'D': {
          const judged = this.judge(id, body as Buffer, kind, ttlMs ?? 0)
          // refused: a miss, asked upstream without the lock (whose answer then replaces the value)
          if (!judged.ok) return { kind: 'go', token: undefined }
          return { kind: 'hit', body: body as Buffer, keep: judged.keep, from: kind === 'D' ? 'peer' : from }
        }
        case 'A':
          return { kind: 'go', token }
        case 'W':
          waitingOn = (body as Buffer).toString()
          break
        default:
          // 'R': the holder finished with nothing to share (an error, a 4xx answer, a stale stand-in)
          return { kind: 'go', token: undefined }
      }
      if (Date.now() + pause > deadline) return { kind: 'go', token: undefined }
      await sleep(pause)
      pause = Math.min(pause * 2, MAX_POLL_MS)
    }
  }

  finish(id: string, token: string | undefined, share: Share | undefined): void {
    // Nothing to publish and no lock held, or Redis down (a held lock then dies by its PX).
    if ((token === undefined && (share === undefined || share.kind === 'handoff')) || !this.redis.up) return
    let kind = ''
    let px = 0
    if (share?.kind === 'terminal') [kind, px] = ['T', share.ttlMs]
    else if (share?.kind === 'live') [kind, px] = ['L', share.ttlMs]
    else if (share?.kind === 'handoff') [kind, px] = ['D', this.opts.lockWaitMs + 1000]
    this.redis.client.mjgwFinish(...this.keys(id), token ?? '', kind, share?.body ?? '', px).catch((err: unknown) => this.redis.warn('write', err))
  }

  /** A terminal task any replica stored (list-by-condition); trouble (Redis down included: no offline queue) is a miss. */
  async get(id: string): Promise<{ body: Buffer; ttlMs: number } | undefined> {
    if (!this.redis.up) return undefined
    const key = this.keys(id)[0]
    try {
      const [body, ttlMs] = await this.redis.within(Promise.all([this.redis.client.getBuffer(key), this.redis.client.pttl(key)]))
      if (body === null || ttlMs <= 0) return undefined
      const judged = this.judge(id, body, 'T', ttlMs)
      return judged.ok && judged.keep !== undefined ? { body, ttlMs: judged.keep.ttlMs } : undefined
    } catch (err) {
      this.redis.warn('read', err)
      return undefined
    }
  }

  set(id: string, body: Buffer, ttlMs: number): void {
    if (!this.redis.up) return
    this.redis.client.set(this.keys(id)[0], body, 'PX', ttlMs).catch((err: unknown) => this.redis.warn('write', err))
  }
}
