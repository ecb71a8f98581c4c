/** Timeouts in a row that open the breaker: one slow answer is noise, three in a row is a Redis that hangs. */
export const BREAKER_THRESHOLD = 3
/** How long an open breaker keeps requests away from Redis before one probe asks again. */
export const BREAKER_COOL_OFF_MS = 5000

export interface BreakerOptions {
  threshold?: number
  coolOffMs?: number
  /** sends one probe (a PING within the command timeout); resolves true when Redis answered */
  probe: () => Promise<boolean>
  /** open = true when the breaker opens, false when it closes again */
  onChange: (open: boolean) => void
}

/**
 * A Redis that hangs (process stopped, socket open) is a Redis that is down. Every request would otherwise wait
 * for a command timeout before going on without it; after BREAKER_THRESHOLD timeouts in a row, nobody asks
 * Redis any more. Every BREAKER_COOL_OFF_MS one probe (from a timer, never from a request) asks again; the
 * first answer closes the breaker.
 */
export class CircuitBreaker {
  private failures = 0
  private openNow = false
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private readonly threshold: number
  private readonly coolOffMs: number

  constructor(private readonly opts: BreakerOptions) {
    this.threshold = opts.threshold ?? BREAKER_THRESHOLD
    this.coolOffMs = opts.coolOffMs ?? BREAKER_COOL_OFF_MS
  }

  get open(): boolean {
    return this.openNow
  }

  /** an answer in time */
  success(): void {
    this.failures = 0
    if (!this.openNow) return
    this.openNow = false
    clearTimeout(this.timer)
    this.opts.onChange(false)
  }

  /** a command that timed out */
  timeout(): void {
    this.failures++
    if (this.openNow || this.failures < this.threshold) return
    this.openNow = true
    this.opts.onChange(true)
    this.scheduleProbe()
  }

  /** no more probes (the connection is closing) */
  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private scheduleProbe(): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      // (success() clears this timer: it only runs while the breaker is open)
      void this.opts.probe().then((answered) => (answered ? this.success() : this.scheduleProbe()))
    }, this.coolOffMs)
    this.timer.unref()
  }
}
