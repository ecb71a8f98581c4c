import type { Writable } from 'node:stream'

export const LOG_BUFFER_BYTES = 4096
export const LOG_FLUSH_MS = 100
/** bytes handed to stdout but not yet taken by its reader; beyond this, lines are dropped rather than queued */
export const LOG_BACKLOG_MAX_BYTES = 1024 * 1024

export interface LogStreamOptions {
  bufferBytes?: number
  flushMs?: number
  backlogMaxBytes?: number
}

/**
 * The process's log destination (pino's stream and the access log's sink): lines are gathered into writes of up to
 * 4 KiB instead of a write per line (at LOG_LEVEL=info, a write per line was most of the access line's cost) and
 * handed on at least every 100 ms.
 *
 * Logging must never stop the gateway: every write is asynchronous (a stdout pipe is non-blocking), so a reader
 * that stops reading never blocks serving or shutdown. While more than LOG_BACKLOG_MAX_BYTES wait for the reader,
 * and for good once the pipe is closed (EPIPE), lines are dropped and counted (mj_gateway_log_lines_dropped_total)
 * instead of piling up in memory. What waits at exit is written if the reader takes it at once, else lost.
 */
export class LogStream {
  /** lines dropped since start (a slow, stopped or closed reader) */
  dropped = 0
  private gathered = ''
  private lines = 0
  private broken = false
  private readonly bufferBytes: number
  private readonly backlogMaxBytes: number
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly out: Writable,
    opts: LogStreamOptions = {}
  ) {
    this.bufferBytes = opts.bufferBytes ?? LOG_BUFFER_BYTES
    this.backlogMaxBytes = opts.backlogMaxBytes ?? LOG_BACKLOG_MAX_BYTES
    // without a listener, EPIPE on stdout would be an uncaught exception
    out.on('error', () => {
      this.broken = true
    })
    this.timer = setInterval(() => this.flush(), opts.flushMs ?? LOG_FLUSH_MS).unref()
  }

  /** one line, newline included (as pino and the access log write them) */
  write(line: string): boolean {
    this.gathered += line
    this.lines++
    if (this.gathered.length >= this.bufferBytes) this.flush()
    return true
  }

  /** hands what is gathered to stdout, or drops it while the reader lags or is gone; never waits */
  flush(): void {
    if (this.lines === 0) return
    const chunk = this.gathered
    const lines = this.lines
    this.gathered = ''
    this.lines = 0
    if (this.broken || this.out.destroyed || this.out.writableLength + chunk.length > this.backlogMaxBytes) {
      this.dropped += lines
      return
    }
    this.out.write(chunk)
  }

  /** stops the periodic flush (tests build several) */
  close(): void {
    this.flush()
    clearInterval(this.timer)
  }
}

let stdout: LogStream | undefined

/** The process's one stdout log stream; what is gathered is handed on when the process exits, a crash included. */
export function stdoutLog(): LogStream {
  if (stdout !== undefined) return stdout
  const stream = new LogStream(process.stdout)
  process.on('exit', () => stream.flush())
  stdout = stream
  return stream
}
