import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { RedisConnection } from '../src/redis/connection.js'
import { sharedRateLimitStore } from '../src/rate-limit/redis-store.js'
import { startRedisServer } from './helpers/redis-server.js'

// The rate limiter itself is the access plugin's; this pins what the Redis tier gives it:
// one count for every replica, and no failed request (a per-replica count instead) while Redis is in trouble.

const redis = await startRedisServer(t)

async function limited(namespace: string, extra: { continueExceeding?: boolean } = {}): Promise<{ url: string; conn: RedisConnection }> {
  const app: FastifyInstance = Fastify({ logger: { level: 'silent' } })
  const conn = new RedisConnection({ url: redis.url, log: app.log, onState: () => undefined })
  app.addHook('onClose', () => conn.close())
  await app.register(rateLimit, { max: 3, timeWindow: 60_000, ...extra, store: sharedRateLimitStore(conn, namespace) })
  app.get('/x', async () => ({ ok: true }))
  app.get('/y', { config: { rateLimit: { max: 1, timeWindow: 60_000 } } }, async () => ({ ok: true }))
  t.teardown(() => app.close())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  for (let i = 0; i < 100 && !conn.up; i++) await new Promise((r) => setTimeout(r, 20))
  return { url, conn }
}

const status = async (url: string): Promise<number> => (await fetch(url)).status

t.test('docs/access-control.md §3 RATE_LIMIT_PER_MINUTE with REDIS_URL: replicas share one count per client', async (t) => {
  const a = await limited('fp-shared')
  const b = await limited('fp-shared')
  t.same(
    [await status(`${a.url}/x`), await status(`${b.url}/x`), await status(`${a.url}/x`), await status(`${b.url}/x`)],
    [200, 200, 200, 429],
    'the fourth request in the minute is refused, whichever replica it reaches'
  )
  t.same([await status(`${b.url}/y`), await status(`${a.url}/y`)], [200, 429], 'route-level limits are shared too')
  const keys = await redis.admin().keys('*')
  t.ok(keys.length > 0 && keys.every((k) => k.startsWith('mjgw:fp-shared:rl:')), `namespaced: ${keys.join(' ')}`)
  const other = await limited('fp-other', { continueExceeding: true })
  t.equal(await status(`${other.url}/x`), 200, 'a gateway with another upstream key counts apart')
})

t.test('a Redis in trouble never fails a rate-limited request: the count falls back to the replica', async (t) => {
  const a = await limited('fp-trouble')
  await redis.admin().call('CLIENT', 'PAUSE', '1500', 'ALL')
  t.same(
    [await status(`${a.url}/x`), await status(`${a.url}/x`), await status(`${a.url}/x`), await status(`${a.url}/x`)],
    [200, 200, 200, 429],
    'a hung Redis (command timeout): counted in memory'
  )
  await redis.kill()
  for (let i = 0; i < 100 && a.conn.up; i++) await new Promise((r) => setTimeout(r, 20))
  t.notOk(a.conn.up)
  t.equal(await status(`${a.url}/y`), 200, 'Redis down: counted in memory')
  t.equal(await status(`${a.url}/y`), 429, '…and still limited')
  await redis.start()
})
