import pino from 'pino'

export type LogDestination = ReturnType<typeof pino.destination>

export const LOG_BUFFER_BYTES = 4096
export const LOG_FLUSH_MS = 100

let stdout: LogDestination | undefined

/**
 * The process's one stdout log destination: lines are gathered into writes of up to 4 KiB instead of a write per
 * line (at LOG_LEVEL=info, a write per line was most of the access line's cost), and whatever is gathered is
 * written at least every 100 ms and when the process exits, a crash included. Only a kill -9 or a power cut can
 * lose the last 100 ms of lines. Writes stay synchronous and in order, from one place.
 */
export function stdoutLog(): LogDestination {
  if (stdout !== undefined) return stdout
  const dest = pino.destination({ dest: 1, sync: true, minLength: LOG_BUFFER_BYTES })
  // flushSync writes nothing when nothing is gathered (sonic-boom's own periodicFlush writes an empty string)
  setInterval(() => dest.flushSync(), LOG_FLUSH_MS).unref()
  process.on('exit', () => dest.flushSync())
  stdout = dest
  return dest
}
