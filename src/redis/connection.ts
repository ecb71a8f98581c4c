import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'

/** A Redis answer a request waits for longer than this is a miss: the gateway goes on without Redis. */
export const COMMAND_TIMEOUT_MS = 200
/** ioredis' own timeout, for commands nobody waits on (writes) and as a backstop */
const BACKSTOP_TIMEOUT_MS = 1000
const CONNECT_TIMEOUT_MS = 2000
const RECONNECT_STEP_MS = 100
const RECONNECT_CAP_MS = 2000
/** one warning per kind of Redis trouble per this interval, however many requests meet it */
const WARN_INTERVAL_MS = 30_000

export interface RedisConnectionOptions {
  url: string
  log: FastifyBaseLogger
  /** connection state changes: true on ready, false on error/close */
  onState: (up: boolean) => void
}

/**
 * The one ioredis client of an app, set up so that Redis trouble never breaks serving:
 * no offline queue and no retries per command (a command fails at once while disconnected),
 * a short timeout on every answer a request waits for, and reconnection forever with capped backoff.
 */
export class RedisConnection {
  readonly client: Redis
  private readonly log: FastifyBaseLogger
  private readonly password: string
  private readonly lastWarned = new Map<string, number>()
  private wasUp = false
  private closing = false

  constructor(opts: RedisConnectionOptions) {
    this.log = opts.log
    this.password = passwordOf(opts.url)
    this.client = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: BACKSTOP_TIMEOUT_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: (times) => Math.min(times * RECONNECT_STEP_MS, RECONNECT_CAP_MS)
    })
    this.client.on('ready', () => {
      this.wasUp = true
      opts.onState(true)
      this.log.info('redis: connected')
    })
    this.client.on('close', () => {
      opts.onState(false)
      if (this.wasUp && !this.closing) this.log.warn('redis: connection lost; serving from memory and upstream until it is back')
      this.wasUp = false
    })
    this.client.on('error', (err: Error) => {
      opts.onState(false)
      this.warn('connection', err, 'redis: connection error; reconnecting')
    })
  }

  get up(): boolean {
    return this.client.status === 'ready'
  }

  /**
   * `command`, or a timeout error after COMMAND_TIMEOUT_MS. The timeout is checked once more after pending I/O
   * has run (setImmediate): when this process was busy for longer than the timeout, an answer that arrived
   * in time is still taken, so only a slow Redis counts as slow, not a slow event loop.
   */
  within<T>(command: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => setImmediate(() => reject(new Error('Command timed out'))), COMMAND_TIMEOUT_MS)
      command.then(
        (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        (err: unknown) => {
          clearTimeout(timer)
          reject(err)
        }
      )
    })
  }

  /**
   * Logs a Redis failure at most once per interval per kind. Only the code and the message, never the
   * error object: an ioredis ReplyError carries its command's arguments (AUTH's password among them).
   */
  warn(kind: string, err: unknown, msg = 'redis: command failed; treated as a miss'): void {
    const now = Date.now()
    if (now - (this.lastWarned.get(kind) ?? -Infinity) < WARN_INTERVAL_MS) return
    this.lastWarned.set(kind, now)
    const e = err as { code?: unknown; message?: unknown }
    let message = String(e.message)
    if (this.password !== '') message = message.split(this.password).join('[redacted]')
    this.log.warn({ redis: { kind, code: e.code, message } }, msg)
  }

  async close(): Promise<void> {
    this.closing = true
    if (this.up) {
      try {
        await this.client.quit()
        return
      } catch {
        // a hung Redis: drop the socket instead
      }
    }
    this.client.disconnect()
  }
}

/** config.ts has checked that the URL parses and decodes */
function passwordOf(url: string): string {
  return decodeURIComponent(new URL(url).password)
}
