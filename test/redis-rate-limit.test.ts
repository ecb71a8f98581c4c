/**
 * RATE_LIMIT_PER_MINUTE with REDIS_URL (README "Rate limits across replicas", docs/operations-resilience.md):
 * counted in memory, reported to Redis in the background, shared by every replica within the stated tolerance,
 * and never reset by a Redis that hangs, restarts empty, or by a replica that restarts.
 */
import t from 'tap'
import { pino } from 'pino'
import { RedisConnection } from '../src/redis/connection.js'
import { SyncedRateLimitStore } from '../src/rate-limit/redis-store.js'
import { startRedisServer } from './helpers/redis-server.js'

const redis = await startRedisServer(t)
const log = pino({ level: 'silent' })

interface Replica {
  store: SyncedRateLimitStore
  conn: RedisConnection
  /** counts one request of `key`; true = admitted (answered at once, or once the client's first report is back) */
  hit(key: string): Promise<boolean>
  /** counts one request of `key`; its count if answered at once, else undefined (it waits for a report) */
  atOnce(key: string): number | undefined
}

let clock = 1_700_000_000_000

async function replica(namespace: string, max: number, opts: { syncMs?: number } = {}): Promise<Replica> {
  const conn = new RedisConnection({ url: redis.url, log, onState: () => undefined })
  t.teardown(() => conn.close())
  for (let i = 0; i < 100 && !conn.up; i++) await new Promise((r) => setTimeout(r, 20))
  const store = new SyncedRateLimitStore(conn, { namespace, max, windowMs: 60_000, now: () => clock, syncMs: opts.syncMs ?? 60_000 })
  return {
    store,
    conn,
    hit(key) {
      return new Promise((resolve) => store.incr(key, (err, r) => resolve(err === null && r !== undefined && r.current <= max)))
    },
    atOnce(key) {
      let current: number | undefined
      store.incr(key, (_err, r) => (current = r?.current))
      return current
    }
  }
}

t.test('one replica: exact, answered at once (no Redis round trip) once the client\'s first report is back, with the time left in the window', async (t) => {
  const a = await replica('fp-exact', 3)
  const seen: { current: number; ttl: number }[] = []
  for (let i = 0; i < 2; i++) a.store.incr('client:a', (_e, r) => seen.push(r as { current: number; ttl: number }))
  t.same(
    seen.map((r) => r.current),
    [1],
    'the first request is answered at once; the second waits for the first report'
  )
  for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 5))
  for (let i = 0; i < 2; i++) a.store.incr('client:a', (_e, r) => seen.push(r as { current: number; ttl: number }))
  t.same(
    seen.map((r) => r.current),
    [1, 2, 3, 4],
    'after the first report, answered synchronously, in order'
  )
  t.equal(seen[0]?.ttl, 60_000 - (clock % 60_000), 'ttl: to the end of the wall-clock minute')
})

t.test('replicas share one count through Redis; a report tells each replica every replica\'s requests', async (t) => {
  const a = await replica('fp-shared', 10)
  const b = await replica('fp-shared', 10)
  for (let i = 0; i < 6; i++) t.ok(await a.hit('client:team'))
  await a.store.sync()
  for (let i = 0; i < 4; i++) t.ok(await b.hit('client:team'), 'b admits while the total is under the limit')
  await b.store.sync()
  t.notOk(await b.hit('client:team'), 'b knows a\'s six: the eleventh is refused')
  t.ok(await a.hit('client:team'), 'a has not heard of b\'s requests yet (the tolerance)')
  await a.store.sync()
  t.notOk(await a.hit('client:team'), 'a learns every replica\'s count from its next report')
  const keys = await redis.admin().keys('mjgw:fp-shared:rl:*')
  t.equal(keys.length, 1)
  t.match(keys[0], /^mjgw:fp-shared:rl:\d+:client:team$/, 'namespaced by key fingerprint and window, keyed by client name')
  let total = 0
  for (let i = 0; i < 100 && total !== 13; i++) {
    await new Promise((r) => setTimeout(r, 10))
    total = Number(await redis.admin().get(keys[0] as string))
  }
  t.equal(total, 13, 'every request (refused ones too) reported once')
  const other = await replica('fp-other', 10)
  t.ok(await other.hit('client:team'), 'a gateway with another upstream key counts apart')
})

/** Waits until every report the replicas have started is answered (a PING on the same connection comes back after it). */
async function settled(...replicas: Replica[]): Promise<void> {
  await new Promise((r) => setImmediate(r))
  await Promise.all(replicas.map((r) => r.conn.client.ping()))
  await new Promise((r) => setImmediate(r))
}

t.test('tolerance: two replicas and a client alternating between them get at most (N-1) x (5 % of the limit + one report\'s worth) over it', async (t) => {
  // the reports run as they do in the gateway: at once for a new client and at 5 % of the limit (here 5). Each
  // request waits until the reports it caused are answered, so "what it sends during one report" is none and the
  // bound is the 5 % alone, however slow this machine or its Redis.
  const max = 100
  const a = await replica('fp-tolerance', max, { syncMs: 100 })
  const b = await replica('fp-tolerance', max, { syncMs: 100 })
  let admitted = 0
  for (let i = 0; i < 400; i++) {
    if (await (i % 2 === 0 ? a : b).hit('client:burst')) admitted++
    await settled(a, b)
  }
  t.ok(admitted >= max, `the limit itself is admitted (${admitted})`)
  t.ok(admitted <= max + 5, `at most ${max + 5} admitted of 400 (${admitted})`)
})

t.test('a new window starts every count again, on every replica alike', async (t) => {
  const a = await replica('fp-window', 2)
  t.ok(await a.hit('ip:1'))
  t.ok(await a.hit('ip:1'))
  t.notOk(await a.hit('ip:1'))
  clock += 60_000
  t.equal(a.atOnce('ip:1'), 1, 'next minute: counted from one again, answered at once')
  await a.store.sync()
  const minute = clock - (clock % 60_000)
  t.same((await redis.admin().keys('mjgw:fp-window:rl:*')).sort(), [`mjgw:fp-window:rl:${minute - 60_000}:ip:1`, `mjgw:fp-window:rl:${minute}:ip:1`], 'one Redis key per window')
  t.equal(Number(await redis.admin().get(`mjgw:fp-window:rl:${minute}:ip:1`)), 1, 'the new minute\'s count starts from one')
})

t.test('a replica that (re)starts learns a client\'s count from its first report: no fresh count for a client over its limit', async (t) => {
  const a = await replica('fp-restart', 5)
  for (let i = 0; i < 5; i++) await a.hit('client:heavy')
  await a.store.sync()
  const fresh = await replica('fp-restart', 5)
  t.equal(fresh.atOnce('client:heavy'), 1, 'the first request, before the report, is let through at once (the tolerance)')
  // sent before the first report is back: they wait for it, so the report's answer judges them
  const meanwhile = await Promise.all([fresh.hit('client:heavy'), fresh.hit('client:heavy'), fresh.hit('client:heavy')])
  t.same(meanwhile, [false, false, false], 'requests sent while the first report is under way wait for it and are refused')
  t.notOk(await fresh.hit('client:heavy'), 'after it, the client is over its limit here too')
})

t.test('requests waiting for a first report that hangs are answered after the command timeout, from what the replica knows', async (t) => {
  const a = await replica('fp-first-hang', 2)
  redis.pause()
  t.teardown(() => redis.resume())
  const started = Date.now()
  t.equal(a.atOnce('client:w'), 1)
  t.equal(a.atOnce('client:w'), undefined, 'the second waits for the first report')
  const waited = await Promise.all([a.hit('client:w'), a.hit('client:w')])
  const ms = Date.now() - started
  t.same(waited, [false, false], 'judged on this replica\'s own count once the report gave up: the third and fourth over the limit')
  t.ok(ms >= 150, `they waited for the report (${ms} ms)`)
  t.ok(ms < 2000, `answered after the command timeout (${ms} ms), not when Redis comes back`)
  redis.resume()
})

t.test('a waiting request whose answer throws does not strand the others nor the report', async (t) => {
  const a = await replica('fp-first-throw', 5)
  t.equal(a.atOnce('client:t'), 1)
  a.store.incr('client:t', () => {
    throw new Error('a handler broke')
  })
  const next = a.hit('client:t')
  await a.store.sync()
  t.equal(await next, true, 'the next waiting request is answered')
  t.equal(a.atOnce('client:t'), 4, 'and counting goes on')
  await a.store.sync()
  t.equal(Number(await redis.admin().get(`mjgw:fp-first-throw:rl:${clock - (clock % 60_000)}:client:t`)), 4, 'every request reported')
})

t.test('more clients than one report carries: every client\'s waiting request is answered, each from its own count', async (t) => {
  const a = await replica('fp-many', 1)
  const keys = Array.from({ length: 1200 }, (_, i) => `ip:10.0.${i >> 8}.${i & 255}`)
  for (const k of keys) t.equal(a.atOnce(k), 1)
  const second = await Promise.all(keys.map((k) => a.hit(k)))
  t.equal(second.filter((ok) => !ok).length, keys.length, 'each client\'s second request is over the limit of 1')
  await a.store.sync()
  t.equal(Number(await redis.admin().get(`mjgw:fp-many:rl:${clock - (clock % 60_000)}:${keys.at(-1) as string}`)), 2)
})

t.test('requests waiting for a first report when the minute turns are judged in their own minute', async (t) => {
  const a = await replica('fp-first-turn', 5)
  a.store.incr('client:m', () => undefined)
  const waited = a.hit('client:m')
  clock += 60_000
  t.equal(a.atOnce('client:m'), 1, 'the new minute counts from one')
  t.equal(await waited, true, 'the waiting request was answered with its own minute\'s count')
})

t.test('Redis hangs (SIGSTOP), restarts empty: counts go on from what the replica knows, never lower', async (t) => {
  const a = await replica('fp-hang', 3)
  for (let i = 0; i < 3; i++) t.ok(await a.hit('client:x'))
  await a.store.sync()
  redis.pause()
  t.teardown(() => redis.resume())
  t.notOk(await a.hit('client:x'), 'over the limit while Redis hangs')
  const started = Date.now()
  await a.store.sync()
  t.ok(Date.now() - started < 2000, 'a report to a hung Redis gives up (command timeout)')
  t.notOk(await a.hit('client:x'), 'still over the limit: the failed report kept its counts')
  redis.resume()
  await redis.kill()
  await redis.start()
  for (let i = 0; i < 200 && !a.conn.up; i++) await new Promise((r) => setTimeout(r, 25))
  t.ok(a.conn.up, 'reconnected to the restarted Redis')
  await a.store.sync()
  // read before the next request, whose own report would race this read on another connection
  t.equal(Number(await redis.admin().get(`mjgw:fp-hang:rl:${clock - (clock % 60_000)}:client:x`)), 2, 'the two requests unreported while it hung were reported once Redis was back')
  t.notOk(await a.hit('client:x'), 'a Redis that lost the count does not lower it')
})

t.test('while Redis is down, requests are counted and not reported; reports stop once the connection closes', async (t) => {
  const a = await replica('fp-down', 2)
  await a.conn.close()
  t.equal(a.atOnce('ip:9'), 1)
  t.equal(a.atOnce('ip:9'), 2, 'a client new to the replica does not wait for a report that cannot be sent')
  await a.store.sync()
  t.equal((await redis.admin().keys('mjgw:fp-down:*')).length, 0)
})
