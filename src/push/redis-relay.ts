import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { RedisConnection } from '../redis/connection.js'
import type { WatchHub } from './watch-hub.js'

// KEYS: the leader lock; ARGV: this replica's token, PX. 1 = this replica leads (renewed or taken), 0 = another does.
const LEAD = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`
// KEYS: the leader lock; ARGV: this replica's token
const RESIGN = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1`

export interface RedisRelayOptions {
  hub: WatchHub
  /** the upstream key's fingerprint (CONTRACT §5.7) */
  namespace: string
  intervalMs: number
  log: FastifyBaseLogger
}

/**
 * With REDIS_URL (CONTRACT §11): one replica refreshes at a time, and every replica's subscribers get the changes.
 *   push:leader   the refresher's lock: a replica token, PX = 3 intervals (at least 3 s), renewed by its holder each
 *                 round; when the holder dies it expires and the next replica to try takes it
 *   push:watched  sorted set: task id → until when some replica's subscriber watches it (announced every interval)
 *   push:changes  pub/sub channel: `{replica}\n{id}\n{body}` for every change (an empty body: the task is gone)
 * Redis trouble never stops push: a replica that cannot reach Redis refreshes its own tasks itself.
 */
export class RedisRelay {
  private readonly token = randomUUID()
  private readonly keys: { lead: string; watched: string; changes: string }
  private readonly leaseMs: number
  private subscriber: Redis | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly redis: RedisConnection,
    private readonly opts: RedisRelayOptions
  ) {
    const prefix = `mjgw:${opts.namespace}:push:`
    this.keys = { lead: `${prefix}leader`, watched: `${prefix}watched`, changes: `${prefix}changes` }
    this.leaseMs = Math.max(3000, 3 * opts.intervalMs)
    redis.client.defineCommand('mjgwLead', { numberOfKeys: 1, lua: LEAD })
    redis.client.defineCommand('mjgwResign', { numberOfKeys: 1, lua: RESIGN })
  }

  start(): void {
    const sub = this.redis.client.duplicate()
    this.subscriber = sub
    sub.on('error', (err: Error) => this.redis.warn('pubsub', err))
    sub.on('ready', () => void sub.subscribe(this.keys.changes).catch((err: unknown) => this.redis.warn('pubsub', err)))
    sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.receive(message))
    this.timer = setInterval(() => void this.announce(), this.opts.intervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.subscriber?.disconnect()
    await this.call((c) => c.mjgwResign(this.keys.lead, this.token)).catch(() => undefined)
  }

  /** whether this replica refreshes this round; true when Redis cannot say (each replica then refreshes its own) */
  async lead(): Promise<boolean> {
    try {
      return (await this.call((c) => c.mjgwLead(this.keys.lead, this.token, this.leaseMs))) === 1
    } catch (err) {
      this.redis.warn('push-lead', err)
      return true
    }
  }

  /** the leader, before its round: every task a subscriber on any replica watches becomes watched here too */
  async before(now: number): Promise<void> {
    await this.call((c) => c.zremrangebyscore(this.keys.watched, '-inf', now))
    const found = await this.call((c) => c.zrange(this.keys.watched, 0, -1, 'WITHSCORES'))
    for (let i = 0; i + 1 < found.length; i += 2) this.opts.hub.watchUntil(found[i] as string, Number(found[i + 1]), now)
  }

  /** a subscriber on some replica watches it */
  async watched(id: string): Promise<boolean> {
    try {
      const until = await this.call((c) => c.zscore(this.keys.watched, id))
      return until !== null && Number(until) > Date.now()
    } catch (err) {
      this.redis.warn('push-watched', err)
      return false
    }
  }

  changed(id: string, body: Buffer): void {
    this.publish(id, body)
  }

  gone(id: string): void {
    this.publish(id, Buffer.alloc(0))
  }

  private publish(id: string, body: Buffer): void {
    const message = Buffer.concat([Buffer.from(`${this.token}\n${id}\n`), body])
    this.call((c) => c.publish(this.keys.changes, message)).catch((err: unknown) => this.redis.warn('pubsub', err))
  }

  private receive(message: Buffer): void {
    const first = message.indexOf(10)
    const second = message.indexOf(10, first + 1)
    if (first < 0 || second < 0 || message.subarray(0, first).toString() === this.token) return
    const id = message.subarray(first + 1, second).toString()
    const body = message.subarray(second + 1)
    if (body.length === 0) this.opts.hub.gone(id)
    else this.opts.hub.apply(id, Buffer.from(body), Date.now())
  }

  /** this replica's subscribers' tasks, announced for one lease */
  private async announce(): Promise<void> {
    const ids = this.opts.hub.listened()
    if (ids.length === 0) return
    const until = Date.now() + this.leaseMs
    const args = ids.flatMap((id) => [until, id])
    await this.call((c) => c.zadd(this.keys.watched, ...args)).catch((err: unknown) => this.redis.warn('push-announce', err))
  }

  private call<T>(command: (client: RelayCommands) => Promise<T>): Promise<T> {
    return this.redis.within(command(this.redis.client as unknown as RelayCommands))
  }
}

/** the ioredis client with the two scripts defined above */
type RelayCommands = Redis & {
  mjgwLead(key: string, token: string, px: number): Promise<number>
  mjgwResign(key: string, token: string): Promise<number>
}
