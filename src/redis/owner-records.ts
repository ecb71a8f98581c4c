import type { OwnerRecords } from '../clients/ownership.js'
import type { QuotaStore } from '../clients/submit-quota.js'
import type { RedisConnection } from './connection.js'

/**
 * Owner records and daily submit counts in Redis, shared by every replica, under `mjgw:{upstream key
 * fingerprint}:` like the cache (CONTRACT §5.7):
 *   owner:{task id}            the owner's name, PX = OWNERSHIP_TTL_DAYS
 *   submits:{client}:{day}     submits of that client on that UTC day
 * Unlike the cache, nothing here is treated as a miss on failure: the caller denies (ownership) or reports.
 */
export class RedisOwnerRecords implements OwnerRecords, QuotaStore {
  private readonly prefix: string

  constructor(
    private readonly redis: RedisConnection,
    namespace: string
  ) {
    this.prefix = `mjgw:${namespace}:`
  }

  async owners(ids: readonly string[]): Promise<Array<string | undefined>> {
    const found = await this.redis.within(this.redis.client.mget(ids.map((id) => `${this.prefix}owner:${id}`)))
    return found.map((v) => v ?? undefined)
  }

  /**
   * First record wins (SET NX): returns the owner already on record, undefined when this one was written. Two
   * commands when one is on record (rare: a submit answered "already exists"), not SET NX GET, which Redis < 7 refuses.
   */
  async record(id: string, owner: string, ttlMs: number): Promise<string | null | undefined> {
    const key = `${this.prefix}owner:${id}`
    if ((await this.redis.within(this.redis.client.set(key, owner, 'PX', ttlMs, 'NX'))) === 'OK') return undefined
    // (null: the record expired in between; none, then)
    return this.redis.within(this.redis.client.get(key))
  }

  async increment(client: string, day: string, ttlMs: number): Promise<number> {
    const key = `${this.prefix}submits:${client}:${day}`
    const [[err, count] = [null, 0]] = (await this.redis.within(this.redis.client.multi().incr(key).pexpire(key, ttlMs).exec())) ?? []
    if (err) throw err
    return count as number
  }
}
