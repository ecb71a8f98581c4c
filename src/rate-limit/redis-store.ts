import type { RedisConnection } from '../redis/connection.js'
import type { Count, CountCallback, Store } from './counter.js'
import { MemoryStore } from './memory-store.js'

/** One fixed window per key, atomically: the first count of a window starts its expiry. */
const COUNT_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`

/**
 * Counts in Redis under `mjgw:{namespace}:rl:`, shared by every replica; while Redis is down or slow, counts in this
 * replica's memory, so a Redis outage neither fails requests nor lifts the limit (it becomes per replica until Redis
 * is back).
 */
export class RedisStore implements Store {
  private readonly local = new MemoryStore()
  private readonly prefix: string

  constructor(
    private readonly redis: RedisConnection,
    namespace: string
  ) {
    this.prefix = `mjgw:${namespace}:rl:`
  }

  incr(key: string, cb: CountCallback, windowMs: number): void {
    if (!this.redis.up) return this.local.incr(key, cb, windowMs)
    const counted = this.redis.client.eval(COUNT_SCRIPT, 1, this.prefix + key, windowMs) as Promise<[number, number]>
    this.redis.within(counted).then(
      ([current, ttl]): void => cb(null, { current, ttl } satisfies Count),
      (err: unknown) => {
        this.redis.warn('rate-limit', err)
        this.local.incr(key, cb, windowMs)
      }
    )
  }
}
