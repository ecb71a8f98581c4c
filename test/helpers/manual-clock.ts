import type { Clock } from '../../src/cache/task-cache.js'

/** A clock that stands still until a test moves it: expiry is reached by advance(), not by sleeping. */
export class ManualClock implements Clock {
  private t: number

  constructor(start = Date.now()) {
    this.t = start
  }

  now(): number {
    return this.t
  }

  advance(ms: number): void {
    this.t += ms
  }
}
