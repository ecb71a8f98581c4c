import { createRequire } from 'node:module'
import type {
  FastifyRateLimitOptions,
  FastifyRateLimitStore,
  FastifyRateLimitStoreCtor,
  RateLimitOptions
} from '@fastify/rate-limit'
import type { Redis } from 'ioredis'
import type { RedisConnection } from '../redis/connection.js'
import { LocalStore, type IncrCallback, type Store } from './counter.js'

type RouteOptions = Parameters<FastifyRateLimitStore['child']>[0]
type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key?: string) => Store

// The plugin's own two stores: its Redis Lua script and its in-memory LRU, not reimplemented here.
const require = createRequire(import.meta.url)
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as RedisStoreCtor

/**
 * Counts in Redis, shared by every replica; while Redis is down or slow, counts in this replica's memory,
 * so a Redis outage neither fails requests nor lifts the limit (it becomes per replica until Redis is back).
 */
class FallbackStore implements FastifyRateLimitStore {
  constructor(
    private readonly shared: Store,
    private readonly local: Store,
    private readonly redis: RedisConnection
  ) {}

  incr(key: string, cb: IncrCallback, timeWindow?: number, max?: number): void {
    if (!this.redis.up) return this.local.incr(key, cb, timeWindow, max)
    const counted = new Promise<{ current: number; ttl: number } | undefined>((resolve, reject) =>
      this.shared.incr(key, (err, result) => (err === null ? resolve(result) : reject(err)), timeWindow, max)
    )
    this.redis.within(counted).then(
      (result) => cb(null, result),
      (err: unknown) => {
        this.redis.warn('rate-limit', err)
        this.local.incr(key, cb, timeWindow, max)
      }
    )
  }

  child(routeOptions: RouteOptions): FastifyRateLimitStore {
    return new FallbackStore(this.shared.child(routeOptions), this.local.child(routeOptions), this.redis)
  }
}

/** The `store` option for @fastify/rate-limit: limits shared through Redis under `mjgw:{namespace}:rl:`. */
export function sharedRateLimitStore(redis: RedisConnection, namespace: string): FastifyRateLimitStoreCtor {
  return class SharedRateLimitStore extends FallbackStore {
    constructor(opts: FastifyRateLimitOptions & Pick<RateLimitOptions, 'continueExceeding' | 'exponentialBackoff'>) {
      const continueExceeding = opts.continueExceeding === true
      const exponentialBackoff = opts.exponentialBackoff === true
      super(
        new RedisStore(continueExceeding, exponentialBackoff, redis.client, `mjgw:${namespace}:rl:`),
        new LocalStore(continueExceeding, exponentialBackoff),
        redis
      )
    }
  }
}
