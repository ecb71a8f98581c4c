export const SHED_RETRY_AFTER_SECONDS = 10

/** The window the event-loop delay is averaged over: as long as the threshold, within 100 ms .. 1 s. */
export function sampleWindowMs(maxEventLoopDelayMs: number): number {
  return Math.min(1000, Math.max(100, maxEventLoopDelayMs))
}

/**
 * EVENT_LOOP_MAX_DELAY_MS: while the event loop lags, answering 503 at once is kinder than making every client wait.
 * @fastify/under-pressure judges each window by the mean delay in it, so a single stall (a long GC pause, a process
 * descheduled on a busy host) makes the *next* window look overloaded when the loop is already fine again. So a
 * request is shed only once the lag has been seen for a whole window; a lone stall sheds nothing.
 */
export class LagJudge {
  private since = 0
  private lastSeen = Number.NEGATIVE_INFINITY

  constructor(private readonly windowMs: number) {}

  /** asked for each request while the last window lagged: true sheds it */
  shed(now: number): boolean {
    if (now - this.lastSeen > 2 * this.windowMs) this.since = now
    this.lastSeen = now
    return now - this.since >= this.windowMs
  }
}
