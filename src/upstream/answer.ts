import type { UpstreamResponse } from './client.js'
import { UpstreamAuthError, UpstreamBadResponseError } from './failures.js'

/** An upstream answer as a client may get it: status, body, and the two headers worth passing on. */
export type Answer = Readonly<UpstreamResponse>

/** How the gateway takes one upstream answer. */
export type Taken =
  /** the success the caller asked for: its own to read */
  | { kind: 'ok'; answer: Answer }
  /** a 4xx about the client's request: passed through as it came */
  | { kind: 'pass'; answer: Answer }
  /** a redirect, or a success the caller cannot use: an upstream failure */
  | { kind: 'unusable'; error: Error }

const isSuccess = (status: number): boolean => status >= 200 && status < 300

/**
 * The one mapping of an upstream status (UpstreamClient already turned 5xx into errors). 401/403 mean the gateway's
 * key was refused, which is the gateway's problem and never the client's, so they are thrown (502) rather than passed.
 */
export function takeAnswer(res: UpstreamResponse, ok: (status: number) => boolean = isSuccess): Taken {
  if (res.status === 401 || res.status === 403) throw new UpstreamAuthError(res.status)
  if (res.status >= 400) return { kind: 'pass', answer: res }
  if (ok(res.status)) return { kind: 'ok', answer: res }
  return { kind: 'unusable', error: new UpstreamBadResponseError(`unexpected HTTP ${res.status}`) }
}
