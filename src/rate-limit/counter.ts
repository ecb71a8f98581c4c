import { createRequire } from 'node:module'
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { ClientIdentity } from '../clients/client-keys.js'

export type IncrCallback = (error: Error | null, result?: { current: number; ttl: number }) => void
type RouteOptions = Parameters<FastifyRateLimitStore['child']>[0]

/** The shape of @fastify/rate-limit's own stores (their incr takes the window and the max too). */
export interface Store {
  incr(key: string, cb: IncrCallback, timeWindow?: number, max?: number): void
  child(routeOptions: RouteOptions): Store
}
type LocalStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => Store

// The plugin's own in-memory LRU store, not reimplemented here.
const require = createRequire(import.meta.url)
export const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as LocalStoreCtor

export const RATE_LIMIT_WINDOW_MS = 60_000

/** What a request is counted under: the token's name when a valid token came with it, else its IP. */
export function rateLimitKey(client: ClientIdentity, ip: string | undefined): string {
  return client.name === undefined ? `ip:${ip}` : `client:${client.name}`
}

/**
 * RATE_LIMIT_PER_MINUTE's one store, counted in by @fastify/rate-limit (every /mj route) and by the hit lane
 * (src/http/hit-lane.ts) alike, so a request counts once whichever of the two answers it.
 */
export class RateLimitCounter {
  constructor(
    private readonly store: Store,
    readonly max: number,
    readonly windowMs = RATE_LIMIT_WINDOW_MS
  ) {}

  /** counts one request of `key`; the callback may run at once (memory) or later (Redis) */
  count(key: string, cb: IncrCallback): void {
    this.store.incr(key, cb, this.windowMs, this.max)
  }

  /** @fastify/rate-limit's `store` option: a class whose every instance counts in this counter's store */
  storeCtor(): FastifyRateLimitStoreCtor {
    const store = this.store
    return class SharedCounterStore implements FastifyRateLimitStore {
      incr(key: string, cb: IncrCallback, timeWindow?: number, max?: number): void {
        store.incr(key, cb, timeWindow, max)
      }

      child(routeOptions: RouteOptions): FastifyRateLimitStore {
        return store.child(routeOptions)
      }
    }
  }
}
