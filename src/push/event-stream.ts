import { errorBody } from '../http/errors.js'
import type { StreamOutput } from './stream-output.js'
import type { TaskState } from './task-state.js'
import type { TaskListener } from './watch-hub.js'

/**
 * A client that stops reading is dropped once this much is waiting in the process for its socket (beyond what the
 * kernel's socket buffer took; Node counts a string by its length, so these are bytes for the ASCII of task JSON):
 * one task body is a few KiB, so this holds a dozen changes, never an unbounded queue.
 */
export const MAX_BUFFERED_BYTES = 64 * 1024

/** `data:` lines for a payload: CR and CRLF become LF (CR alone would end an SSE line and cut the JSON). */
function dataLines(payload: string): string {
  return payload
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((line) => `data: ${line}\n`)
    .join('')
}

/**
 * One subscriber connection of CONTRACT §11: the tasks it asked for, in order, and the state it last saw of each.
 * Its event ids list those states (one short digest per task, joined by '.'), so a reconnecting EventSource's
 * Last-Event-ID says exactly what it has seen, on whichever replica it lands, and nothing is sent twice.
 */
export class EventStream implements TaskListener {
  private readonly versions: string[]
  private readonly open: Set<string>
  private closed = false
  /** what may wait for the socket: MAX_BUFFERED_BYTES, plus the first states (written at once, bounded by the ids) */
  private allowance = MAX_BUFFERED_BYTES
  private opening = true

  constructor(
    private readonly out: StreamOutput,
    private readonly ids: readonly string[],
    lastEventId: string | undefined,
    private readonly onClose: (stream: EventStream) => void
  ) {
    const seen = lastEventId?.split('.') ?? []
    this.versions = ids.map((_, i) => (seen.length === ids.length ? (seen[i] as string) : ''))
    this.open = new Set(ids)
    out.onClose(() => this.close())
  }

  update(id: string, body: Buffer, state: TaskState): void {
    const i = this.ids.indexOf(id)
    if (this.closed || i < 0 || !this.open.has(id)) return
    if (this.versions[i] !== state.version) {
      this.versions[i] = state.version
      this.write(`event: task\nid: ${this.versions.join('.')}\n${dataLines(body.toString('utf8'))}\n`)
    }
    if (state.terminal) this.finish(id)
  }

  gone(id: string): void {
    if (this.closed || !this.open.has(id)) return
    const error = { ...errorBody(404, 'MJGW_TASK_NOT_FOUND', `task ${id} not found upstream`), id }
    this.write(`event: error\n${dataLines(JSON.stringify(error))}\n`)
    // one task of one: the stream is about nothing any more
    if (this.ids.length === 1) this.close()
    else this.finish(id)
  }

  /** the first states are written; from now on only MAX_BUFFERED_BYTES more may wait */
  opened(): void {
    this.opening = false
  }

  /** a comment line: keeps proxies from closing an idle stream */
  heartbeat(): void {
    this.write(': keep-alive\n\n')
  }

  /** Ends the stream (idempotent); the response is ended, or destroyed when the client stopped reading. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.out.end()
    this.onClose(this)
  }

  private finish(id: string): void {
    this.open.delete(id)
    if (this.open.size > 0) return
    this.write('event: end\ndata: {}\n\n')
    this.close()
  }

  private write(chunk: string): void {
    if (this.closed) return
    if (this.opening) this.allowance += chunk.length
    else if (this.out.waiting > this.allowance) {
      // it stopped reading: drop it rather than hold ever more for it
      this.closed = true
      this.out.destroy()
      this.onClose(this)
      return
    }
    this.out.write(chunk)
  }
}
