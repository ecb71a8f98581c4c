import t from 'tap'
import pino from 'pino'
import { RedisConnection } from '../src/redis/connection.js'
import { RedisStore } from '../src/rate-limit/redis-store.js'
import type { Count } from '../src/rate-limit/counter.js'
import { startRedisServer } from './helpers/redis-server.js'

// What the Redis tier gives RATE_LIMIT_PER_MINUTE: one count for every replica, and no failed request (a per-replica
// count instead) while Redis is in trouble.

const redis = await startRedisServer(t)

async function store(namespace: string): Promise<{ store: RedisStore; conn: RedisConnection }> {
  const conn = new RedisConnection({ url: redis.url, log: pino({ level: 'silent' }), onState: () => undefined })
  t.teardown(() => conn.close())
  for (let i = 0; i < 100 && !conn.up; i++) await new Promise((r) => setTimeout(r, 20))
  return { store: new RedisStore(conn, namespace), conn }
}

const count = (s: RedisStore, key: string, windowMs = 60_000): Promise<Count> =>
  new Promise((resolve, reject) => s.incr(key, (err, c) => (err === null && c !== undefined ? resolve(c) : reject(err)), windowMs))

t.test('RATE_LIMIT_PER_MINUTE with REDIS_URL: replicas share one count per key, namespaced by the upstream key', async (t) => {
  const a = await store('fp-shared')
  const b = await store('fp-shared')
  const counts = [await count(a.store, 'client:alpha'), await count(b.store, 'client:alpha'), await count(a.store, 'client:alpha')]
  t.same(
    counts.map((c) => c.current),
    [1, 2, 3],
    'whichever replica counts'
  )
  for (const c of counts) t.ok(c.ttl > 55_000 && c.ttl <= 60_000, `what is left of the window (${c.ttl} ms)`)
  t.equal((await count(b.store, 'client:beta')).current, 1, 'another key counts apart')
  const keys = await redis.admin().keys('*')
  t.ok(keys.length > 0 && keys.every((k) => k.startsWith('mjgw:fp-shared:rl:')), `namespaced: ${keys.join(' ')}`)
  t.ok((await redis.admin().pttl('mjgw:fp-shared:rl:client:alpha')) > 0, 'the window expires in Redis')
  const other = await store('fp-other')
  t.equal((await count(other.store, 'client:alpha')).current, 1, 'a gateway with another upstream key counts apart')
})

t.test('a window starts again once it is over', async (t) => {
  const a = await store('fp-window')
  t.equal((await count(a.store, 'k', 50)).current, 1)
  t.equal((await count(a.store, 'k', 50)).current, 2)
  await new Promise((r) => setTimeout(r, 120))
  t.equal((await count(a.store, 'k', 50)).current, 1)
})

t.test('a key left without an expiry (written by hand) gets one at its next count', async (t) => {
  const a = await store('fp-noexpiry')
  await redis.admin().set('mjgw:fp-noexpiry:rl:k', '5')
  const c = await count(a.store, 'k')
  t.equal(c.current, 6)
  t.equal(c.ttl, 60_000)
  t.ok((await redis.admin().pttl('mjgw:fp-noexpiry:rl:k')) > 0)
})

t.test('a Redis in trouble never fails a count: it falls back to the replica', async (t) => {
  const a = await store('fp-trouble')
  await redis.admin().call('CLIENT', 'PAUSE', '1500', 'ALL')
  const hung: number[] = []
  for (let i = 0; i < 4; i++) hung.push((await count(a.store, 'x')).current)
  t.same(hung, [1, 2, 3, 4], 'a hung Redis (command timeout): counted in memory')
  await redis.kill()
  for (let i = 0; i < 100 && a.conn.up; i++) await new Promise((r) => setTimeout(r, 20))
  t.notOk(a.conn.up)
  t.same([(await count(a.store, 'y')).current, (await count(a.store, 'y')).current], [1, 2], 'Redis down: counted in memory')
  await redis.start()
})
