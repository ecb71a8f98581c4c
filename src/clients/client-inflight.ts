import type { ClientIdentity } from './client-keys.js'

const NOTHING = (): void => undefined

/**
 * CLIENT_MAX_INFLIGHT (CONTRACT §9): requests of one client being worked on at once, counted per client name
 * (a configured token or a JWT user). Requests without an identity (client auth off) share no name and are not
 * capped here: an address is not a client, and one proxy in front may carry many. The hit lane asks admits() and
 * leaves a client at its cap to the Fastify route, which refuses it; an answer the lane gives takes no time.
 */
export class ClientInflight {
  private readonly counts = new Map<string, number>()

  constructor(readonly max: number) {}

  admits(client: ClientIdentity): boolean {
    return client.name === undefined || (this.counts.get(client.name) ?? 0) < this.max
  }

  /** counts a request in, or undefined when the client is at its cap; the returned function counts it out (once) */
  enter(client: ClientIdentity): (() => void) | undefined {
    const key = client.name
    if (key === undefined) return NOTHING
    const n = this.counts.get(key) ?? 0
    if (n >= this.max) return undefined
    this.counts.set(key, n + 1)
    let left = false
    return () => {
      if (left) return
      left = true
      const now = (this.counts.get(key) as number) - 1
      if (now === 0) this.counts.delete(key)
      else this.counts.set(key, now)
    }
  }
}

/**
 * SUBMIT_INFLIGHT_MAX_BYTES (CONTRACT §9): submit body bytes held at once, all clients together, so concurrent
 * large submits cannot take the process's memory.
 */
export class SubmitBytes {
  private held = 0

  constructor(readonly max: number) {}

  /** reserves `n` bytes; false (nothing reserved) when they do not fit */
  reserve(n: number): boolean {
    if (this.held + n > this.max) return false
    this.held += n
    return true
  }

  release(n: number): void {
    this.held -= n
  }
}
