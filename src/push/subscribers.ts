import type { EventStream } from './event-stream.js'

/** CONTRACT §11: subscriber connections one client may hold at once */
export const MAX_SUBSCRIBERS_PER_CLIENT = 100
/** a comment line at least this often on every stream (the contract asks for at least every 15 s) */
export const HEARTBEAT_MS = 10_000

/**
 * Every open events stream: the limits (EVENTS_MAX_SUBSCRIBERS in all, 100 per client), one heartbeat timer for
 * all of them (not one per connection), and closing them all when the gateway shuts down.
 */
export class Subscribers {
  private readonly streams = new Set<EventStream>()
  private readonly perClient = new Map<string, number>()
  private reserved = 0
  private readonly timer: NodeJS.Timeout
  /** closeAll() ran: the gateway is shutting down */
  closing = false

  constructor(
    private readonly max: number,
    heartbeatMs = HEARTBEAT_MS
  ) {
    this.timer = setInterval(() => {
      for (const s of this.streams) s.heartbeat()
    }, heartbeatMs)
    this.timer.unref()
  }

  /** open streams, and those being opened */
  get count(): number {
    return this.reserved
  }

  /** Takes a place for `client` (its rate-limit key); false when a limit is reached. Give it back with release(). */
  reserve(client: string): boolean {
    const mine = this.perClient.get(client) ?? 0
    if (this.reserved >= this.max || mine >= MAX_SUBSCRIBERS_PER_CLIENT) return false
    this.reserved++
    this.perClient.set(client, mine + 1)
    return true
  }

  release(client: string): void {
    this.reserved--
    const mine = (this.perClient.get(client) as number) - 1
    if (mine === 0) this.perClient.delete(client)
    else this.perClient.set(client, mine)
  }

  add(stream: EventStream): void {
    this.streams.add(stream)
  }

  delete(stream: EventStream): void {
    this.streams.delete(stream)
  }

  /** at shutdown: every stream ends (the client's EventSource reconnects elsewhere) */
  closeAll(): void {
    this.closing = true
    clearInterval(this.timer)
    for (const s of [...this.streams]) s.close()
  }
}
