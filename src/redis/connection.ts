import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import { CircuitBreaker } from './breaker.js'

/** A Redis answer a request waits for longer than this is a miss: the gateway goes on without Redis. */
export const COMMAND_TIMEOUT_MS = 200
/** ioredis' own timeout, for commands nobody waits on (writes) and as a backstop */
const BACKSTOP_TIMEOUT_MS = 1000
const CONNECT_TIMEOUT_MS = 2000
const RECONNECT_STEP_MS = 100
const RECONNECT_CAP_MS = 2000
/** a PING this often, so a Redis that hangs opens the breaker (and the Redis-down alert) without any traffic */
const HEALTH_PING_MS = 2000
/** one warning per kind of Redis trouble per this interval, however many requests meet it */
const WARN_INTERVAL_MS = 30_000

export interface RedisConnectionOptions {
  url: string
  log: FastifyBaseLogger
  /** state changes: true when ready (and answering), false on error/close or when the breaker opens */
  onState: (up: boolean) => void
  /** breaker settings (tests shorten the cool-off); defaults in breaker.ts */
  breaker?: { threshold?: number; coolOffMs?: number }
}

/**
 * The one ioredis client of an app, set up so that Redis trouble never breaks serving:
 * no offline queue and no retries per command (a command fails at once while disconnected),
 * a short timeout on every answer a request waits for, a circuit breaker that stops asking a Redis that hangs,
 * and reconnection forever with capped backoff.
 */
export class RedisConnection {
  readonly client: Redis
  private readonly log: FastifyBaseLogger
  private readonly password: string
  private readonly lastWarned = new Map<string, number>()
  private readonly breaker: CircuitBreaker
  private readonly listeners: ((up: boolean) => void)[] = []
  private readonly pinger: NodeJS.Timeout
  private wasUp = false
  private closing = false

  private readonly onStateOption: (up: boolean) => void

  constructor(opts: RedisConnectionOptions) {
    this.log = opts.log
    this.onStateOption = opts.onState
    this.password = passwordOf(opts.url)
    this.client = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: BACKSTOP_TIMEOUT_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: (times) => Math.min(times * RECONNECT_STEP_MS, RECONNECT_CAP_MS)
    })
    this.breaker = new CircuitBreaker({
      ...opts.breaker,
      probe: () => this.within(this.client.ping()).then(
        () => true,
        () => false
      ),
      onChange: (open) => {
        if (open) this.log.warn('redis: not answering (timeouts in a row); not asked until a probe gets an answer')
        else if (this.client.status === 'ready') this.log.info('redis: answering again')
        this.emit(!open && this.client.status === 'ready')
      }
    })
    this.pinger = setInterval(() => {
      if (this.up) this.within(this.client.ping()).catch(() => undefined)
    }, HEALTH_PING_MS)
    this.pinger.unref()
    this.client.on('ready', () => {
      this.wasUp = true
      this.breaker.success()
      this.emit(true)
      this.log.info('redis: connected')
    })
    this.client.on('close', () => {
      this.emit(false)
      if (this.wasUp && !this.closing) this.log.warn('redis: connection lost; serving from memory and upstream until it is back')
      this.wasUp = false
    })
    this.client.on('error', (err: Error) => {
      this.emit(false)
      this.warn('connection', err, 'redis: connection error; reconnecting')
    })
  }

  /** also tells `listener` of every state change (as opts.onState) */
  onState(listener: (up: boolean) => void): void {
    this.listeners.push(listener)
  }

  private emit(up: boolean): void {
    this.onStateOption(up)
    for (const l of this.listeners) l(up)
  }

  info(obj: object, msg: string): void {
    this.log.info(obj, msg)
  }

  /** ready and answering: false while disconnected, while the breaker is open, and once close() was called */
  get up(): boolean {
    return !this.closing && this.client.status === 'ready' && !this.breaker.open
  }

  /** true once close() was called */
  get closed(): boolean {
    return this.closing
  }

  /**
   * `command`, or a timeout error after COMMAND_TIMEOUT_MS. The timeout is checked once more after pending I/O
   * has run (setImmediate): when this process was busy for longer than the timeout, an answer that arrived
   * in time is still taken, so only a slow Redis counts as slow, not a slow event loop.
   */
  within<T>(command: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (settled) return
            settled = true
            this.breaker.timeout()
            reject(new Error('Command timed out'))
          }),
        COMMAND_TIMEOUT_MS
      )
      command.then(
        (value) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          this.breaker.success()
          resolve(value)
        },
        (err: unknown) => {
          if (settled) return
          settled = true
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
    const answering = this.up
    this.closing = true
    this.breaker.stop()
    clearInterval(this.pinger)
    if (answering) {
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
