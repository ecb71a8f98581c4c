import { LRUCache } from 'lru-cache'
import type { CountCallback, Store } from './counter.js'

interface Window {
  count: number
  resetAt: number
}

/** Keys counted at once; past that, the least recently counted key is forgotten (and starts afresh). */
const MAX_KEYS = 100_000

/** Fixed-window counts in this process's memory. */
export class MemoryStore implements Store {
  private readonly windows = new LRUCache<string, Window>({ max: MAX_KEYS })

  incr(key: string, cb: CountCallback, windowMs: number): void {
    const now = Date.now()
    let w = this.windows.get(key)
    if (w === undefined || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowMs }
      this.windows.set(key, w)
    }
    w.count++
    cb(null, { current: w.count, ttl: w.resetAt - now })
  }
}
