/** How long one upstream 401/403 keeps /readyz degraded unless a success comes after it. */
export const KEY_REJECTED_WINDOW_MS = 60_000

export type KeyState = { rejected: false } | { rejected: true; status: number; secondsAgo: number }

/**
 * Whether the upstream has been refusing the gateway's key lately: a 401/403 (never the client's: client
 * credentials are never forwarded) seen within KEY_REJECTED_WINDOW_MS with no upstream success after it.
 */
export class KeyHealth {
  private rejectedAt = -Infinity
  private rejectedStatus = 0
  /** an upstream success came after the last rejection */
  private acceptedSince = true

  constructor(private readonly now: () => number = Date.now) {}

  /** every upstream answer's status */
  saw(status: number): void {
    if (status === 401 || status === 403) {
      this.rejectedAt = this.now()
      this.rejectedStatus = status
      this.acceptedSince = false
    } else if (status >= 200 && status < 300) {
      this.acceptedSince = true
    }
  }

  state(): KeyState {
    const now = this.now()
    if (now - this.rejectedAt >= KEY_REJECTED_WINDOW_MS || this.acceptedSince) return { rejected: false }
    return { rejected: true, status: this.rejectedStatus, secondsAgo: Math.floor((now - this.rejectedAt) / 1000) }
  }
}
