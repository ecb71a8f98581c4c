/**
 * What Redis returns is judged as strictly as what upstream returns (docs/operations-resilience.md, "Redis"):
 * the id must match, a task entry must be terminal and a poll entry live, lifetimes are capped by the local
 * rules; anything else is a miss, counted in mj_gateway_redis_values_rejected_total{reason}. After Redis comes
 * back, what a replica served from memory meanwhile is written back.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { fingerprint } from '../src/config.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { startRedisServer } from './helpers/redis-server.js'
import { startGateway, type Gateway } from './helpers/gateway.js'

const KEY = 'values-upstream-key-1414213562'
const FETCHES = 'GET /mj/task/:id/fetch'
const REJECTED = (reason: string): string => `mj_gateway_redis_values_rejected_total{reason="${reason}"}`

const redis = await startRedisServer(t)
const sim = await startSimulatedUpstream()
t.teardown(() => sim.close())
const calls = (): number => sim.stats.byRoute[FETCHES] ?? 0
const taskKey = (id: string): string => `mjgw:${fingerprint(KEY)}:task:${id}`
const pollKey = (id: string): string => `mjgw:${fingerprint(KEY)}:poll:${id}`

async function replica(env: Record<string, string> = {}): Promise<Gateway> {
  const r = await startGateway(t, { LOG_LEVEL: 'info', UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: KEY, REDIS_URL: redis.url, RATE_LIMIT_PER_MINUTE: '0', ...env })
  await r.waitRedis('up')
  return r
}

const task = (id: string, status: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ id, status, progress: '100%', ...extra })

t.test('every reason starts at zero', async (t) => {
  const r = await replica()
  for (const reason of ['foreign', 'not_terminal', 'not_live', 'bad', 'expired']) t.equal(await r.metric(REJECTED(reason)), 0, reason)
})

t.test('a task entry for another id, not JSON, or live is a miss (asked upstream) and counted', async (t) => {
  const r = await replica()
  const cases: [string, (id: string) => string][] = [
    ['foreign', () => task('someone-else', 'SUCCESS')],
    ['bad', () => 'not json at all'],
    ['bad', () => '[1,2,3]'],
    ['not_terminal', (id) => task(id, 'IN_PROGRESS')]
  ]
  for (const [reason, value] of cases) {
    const id = sim.finishedTask()
    await redis.admin().set(taskKey(id), value(id), 'PX', 60_000)
    const before = calls()
    const rejectedBefore = (await r.metric(REJECTED(reason))) ?? 0
    const res = await r.fetchTask(id)
    t.equal(res.status, 200, reason)
    t.equal(res.headers['x-cache'], 'MISS', `${reason}: not a HIT`)
    t.match(JSON.parse(res.text), { id, status: 'SUCCESS' }, 'the upstream answer, not the Redis value')
    t.equal(calls() - before, 1, 'asked upstream')
    t.equal(await r.metric(REJECTED(reason)), rejectedBefore + 1, `counted as ${reason}`)
    await sleep(50)
    t.match(JSON.parse((await redis.admin().get(taskKey(id))) as string), { id, status: 'SUCCESS' }, 'the bad value is replaced')
  }
})

t.test('a poll entry that is not live, or for another id, is a miss', async (t) => {
  const r = await replica()
  const id = sim.finishedTask()
  await redis.admin().set(pollKey(id), task(id, 'SUCCESS'), 'PX', 60_000)
  t.equal((await r.fetchTask(id)).headers['x-cache'], 'MISS')
  t.equal(await r.metric(REJECTED('not_live')), 1)
  const other = sim.finishedTask()
  await redis.admin().set(pollKey(other), task('x', 'IN_PROGRESS'), 'PX', 60_000)
  t.equal((await r.fetchTask(other)).headers['x-cache'], 'MISS')
  t.equal(await r.metric(REJECTED('foreign')), 1)
})

t.test('a Redis TTL longer than CACHE_TTL_SECONDS is capped by it; an imageUrl past its expiry margin is refused', async (t) => {
  const r = await replica({ CACHE_TTL_SECONDS: '30' })
  const id = sim.finishedTask()
  await redis.admin().set(taskKey(id), task(id, 'SUCCESS'), 'PX', 3_600_000)
  const res = await r.fetchTask(id)
  t.equal(res.headers['x-cache'], 'HIT', 'a valid entry is a HIT')
  const maxAge = Number(/max-age=(\d+)/.exec(res.headers['cache-control'] ?? '')?.[1])
  t.ok(maxAge <= 30, `max-age ${maxAge} ≤ CACHE_TTL_SECONDS`)

  const gone = sim.finishedTask()
  const ex = Math.floor(Date.now() / 1000 + 60).toString(16) // inside the default 300 s margin
  await redis.admin().set(taskKey(gone), task(gone, 'SUCCESS', { imageUrl: `https://cdn.discordapp.com/a.png?ex=${ex}` }), 'PX', 3_600_000)
  t.equal((await r.fetchTask(gone)).headers['x-cache'], 'MISS')
  t.equal(await r.metric(REJECTED('expired')), 1)
})

t.test('list-by-condition reads Redis with the same judgement', async (t) => {
  const token = 'tok-values-list-0123456789'
  const r = await replica({ CLIENT_KEYS: `team:${token}` })
  const good = sim.finishedTask()
  const bad = sim.finishedTask()
  await redis.admin().set(taskKey(good), task(good, 'SUCCESS'), 'PX', 60_000)
  await redis.admin().set(taskKey(bad), task('other', 'SUCCESS'), 'PX', 60_000)
  const res = await r.post('/mj/task/list-by-condition', { ids: [good, bad] }, { authorization: `Bearer ${token}` })
  t.equal(res.status, 200)
  t.equal(res.headers['x-cache-hits'], '1', 'only the valid entry came from Redis')
  const list = res.json() as { id: string }[]
  t.same(
    list.map((x) => x.id),
    [good, bad],
    'the refused one was asked upstream'
  )
  t.equal(await r.metric(REJECTED('foreign')), 1)
})

t.test('after a Redis outage, tasks served from memory are written back for the other replicas', async (t) => {
  const a = await replica()
  const id = sim.finishedTask()
  t.equal((await a.fetchTask(id)).headers['x-cache'], 'MISS')
  await redis.kill()
  await a.waitRedis('down')
  t.equal((await a.fetchTask(id)).headers['x-cache'], 'HIT', 'served from memory meanwhile')
  await redis.start()
  await a.waitRedis('up')
  for (let i = 0; i < 100 && (await redis.admin().exists(taskKey(id))) === 0; i++) await sleep(20)
  const ttl = await redis.admin().pttl(taskKey(id))
  t.ok(ttl > 0 && ttl <= 3_600_000, `written back with its life left (${ttl} ms)`)
  t.ok(a.logLines().some((l) => l.includes('written back after an outage')))
  const b = await replica()
  const before = calls()
  t.equal((await b.fetchTask(id)).headers['x-cache'], 'HIT', 'another replica finds it')
  t.equal(calls(), before, 'without asking upstream')
  t.equal((await b.get('/readyz')).status, 200)
})

t.test('write-back goes in batches, and a failure part way is logged once and harms nothing', async (t) => {
  const { pino } = await import('pino')
  const { RedisConnection } = await import('../src/redis/connection.js')
  const { RedisSharedTier } = await import('../src/redis/shared-tier.js')
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) })
  const conn = new RedisConnection({ url: redis.url, log, onState: () => undefined })
  t.teardown(() => conn.close())
  function* memory(): Generator<{ id: string; body: Buffer; ttlMs: number }> {
    for (let i = 0; i < 250; i++) yield { id: `wb-${i}`, body: Buffer.from(task(`wb-${i}`, 'SUCCESS')), ttlMs: 60_000 }
    throw new Error('memory went away')
  }
  new RedisSharedTier(conn, { namespace: 'fp-writeback', lockTtlMs: 1000, lockWaitMs: 100, rules: { ttlSeconds: 3600, urlExpiryMarginSeconds: 300, pollCacheMs: 1000 }, memory })
  for (let i = 0; i < 200 && !lines.some((l) => l.includes('written back')); i++) await sleep(20)
  t.equal((await redis.admin().keys('mjgw:fp-writeback:task:*')).length, 200, 'two full batches of 100 written before the failure')
  t.ok(lines.some((l) => l.includes('"tasks":200') && l.includes('written back')), 'the count is logged')
  t.ok(lines.some((l) => l.includes('memory went away') && l.includes('"level":40')), 'the failure is one warning')
  t.ok(conn.up, 'Redis still in use')
})
