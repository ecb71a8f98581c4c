/** A slot of the upstream connection pool, given back with release(). */
export type Release = () => void

interface Waiter {
  readonly client: string | undefined
  readonly grant: (release: Release) => void
}

/**
 * The upstream connections shared between clients (CONTRACT §9): a named client holds at most half of them, so
 * one client's hanging calls leave the other half to everyone else; calls beyond what may start now wait, and a
 * freed slot goes to the first waiter (in arrival order) allowed to take it. Calls without a client (auth off,
 * the gateway's own) are bounded by the total only.
 */
export class FairShare {
  private inUse = 0
  private readonly held = new Map<string, number>()
  private readonly waiting: Waiter[] = []
  readonly perClient: number

  constructor(readonly total: number) {
    this.perClient = Math.max(1, Math.floor(total / 2))
  }

  /**
   * A slot now, or undefined when the caller has to wait() for one. Nobody who waits could take a slot now (a
   * release hands it on at once), so taking one here jumps no waiter: those waiting are at their share.
   */
  tryAcquire(client: string | undefined): Release | undefined {
    return this.may(client) ? this.take(client) : undefined
  }

  /** a slot once one is free for `client`; `signal` gives up waiting (the promise then rejects with its reason) */
  wait(client: string | undefined, signal: AbortSignal): Promise<Release> {
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        client,
        grant: (release) => {
          signal.removeEventListener('abort', onAbort)
          resolve(release)
        }
      }
      const onAbort = (): void => {
        const at = this.waiting.indexOf(waiter)
        if (at !== -1) this.waiting.splice(at, 1)
        reject(signal.reason as Error)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(waiter)
    })
  }

  /** calls under way for `client` */
  holding(client: string): number {
    return this.held.get(client) ?? 0
  }

  private may(client: string | undefined): boolean {
    return this.inUse < this.total && (client === undefined || this.holding(client) < this.perClient)
  }

  private take(client: string | undefined): Release {
    this.inUse++
    if (client !== undefined) this.held.set(client, this.holding(client) + 1)
    let done = false
    return () => {
      if (done) return
      done = true
      this.inUse--
      if (client !== undefined) {
        const n = this.holding(client) - 1
        if (n === 0) this.held.delete(client)
        else this.held.set(client, n)
      }
      this.next()
    }
  }

  private next(): void {
    for (let i = 0; i < this.waiting.length && this.inUse < this.total; i++) {
      const w = this.waiting[i] as Waiter
      if (!this.may(w.client)) continue
      this.waiting.splice(i, 1)
      i--
      w.grant(this.take(w.client))
    }
  }
}
