import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { fingerprint } from '../src/config.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { metricNamesUsedByDeployFiles } from './helpers/deploy-metrics.js'
import { startRedisServer } from './helpers/redis-server.js'
import { startGateway, type Gateway } from './helpers/gateway.js'
import { waitFor } from './helpers/net.js'

const KEY_A = 'upstream-key-alpha-0123456789'
const KEY_B = 'upstream-key-bravo-9876543210'
const FETCHES = 'GET /mj/task/:id/fetch'
const HIT_SHARED = 'mj_gateway_cache_lookups_total{result="hit_shared"}'
const HIT = 'mj_gateway_cache_lookups_total{result="hit"}'

const redis = await startRedisServer(t)
const sim = await startSimulatedUpstream()
t.teardown(() => sim.close())

const calls = (): number => sim.stats.byRoute[FETCHES] ?? 0

async function replicas(n: number, env: Record<string, string> = {}): Promise<Gateway[]> {
  const out: Gateway[] = []
  for (let i = 0; i < n; i++) {
    const r = await startGateway(t, { LOG_LEVEL: 'info', UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: KEY_A, REDIS_URL: redis.url, ...env })
    await r.waitRedis('up')
    out.push(r)
  }
  return out
}

const [a, b] = await replicas(2)
if (a === undefined || b === undefined) throw new Error('no replicas')

t.test('docs/caching.md §7 a terminal task stored by one replica is a HIT on another, counted hit_shared, same bytes', async (t) => {
  const id = sim.finishedTask()
  const before = calls()
  const first = await a.fetchTask(id)
  t.equal(first.headers['x-cache'], 'MISS')
  const second = await b.fetchTask(id)
  t.equal(second.status, 200)
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.text, first.text, 'byte for byte')
  t.equal(second.headers['etag'], first.headers['etag'])
  t.match(second.headers['cache-control'], /^private, max-age=\d+$/)
  t.equal(calls() - before, 1, 'one upstream call for both replicas')
  t.equal(await b.metric(HIT_SHARED), 1, 'the shared hit is counted hit_shared')
  t.equal(await b.metric(HIT), 0, '…and not also as hit')
  const third = await b.fetchTask(id)
  t.equal(third.headers['x-cache'], 'HIT')
  t.equal(await b.metric(HIT), 1, 'the Redis hit filled memory: the next one is a memory hit')
  t.equal(await b.metric(HIT_SHARED), 1)
})

t.test('docs/caching.md §7 Redis holds the upstream bytes as sent, under the key fingerprint, with the in-memory TTL', async (t) => {
  const id = sim.finishedTask()
  const res = await a.fetchTask(id)
  const key = `mjgw:${fingerprint(KEY_A)}:task:${id}`
  await sleep(50) // the write is fire-and-forget
  const stored = await redis.admin().getBuffer(key)
  t.same(stored, Buffer.from(res.text), 'raw bytes, not re-serialised')
  const pttl = await redis.admin().pttl(key)
  t.ok(pttl > 3_500_000 && pttl <= 3_600_000, `PX is CACHE_TTL_SECONDS (got ${pttl})`)
  const keys = await redis.admin().keys('*')
  for (const k of keys) {
    t.ok(k.startsWith('mjgw:'), `${k} is namespaced`)
    t.notOk(k.includes(KEY_A) || k.includes(KEY_B), 'no key contains an upstream key')
  }
})

t.test('docs/caching.md §7 gateways with different upstream keys sharing one Redis never see each other’s tasks', async (t) => {
  const [other] = await replicas(1, { UPSTREAM_API_KEY: KEY_B })
  if (other === undefined) throw new Error('no replica')
  const id = sim.finishedTask()
  const before = calls()
  t.equal((await a.fetchTask(id)).headers['x-cache'], 'MISS')
  t.equal((await other.fetchTask(id)).headers['x-cache'], 'MISS', 'the other key’s gateway asks its upstream itself')
  t.equal(calls() - before, 2)
  t.equal(await other.metric(HIT_SHARED), 0)
  t.equal(sim.lastRequest?.headers['authorization'], `Bearer ${KEY_B}`, 'with its own key')
  const keys = await redis.admin().keys(`*:task:${id}`)
  t.same(keys.sort(), [`mjgw:${fingerprint(KEY_A)}:task:${id}`, `mjgw:${fingerprint(KEY_B)}:task:${id}`].sort())
})

t.test('docs/caching.md §3 a live task is shared through Redis for POLL_CACHE_MS, then asked again', async (t) => {
  const [p, q] = await replicas(2, { POLL_CACHE_MS: '1500' })
  if (p === undefined || q === undefined) throw new Error('no replicas')
  const id = sim.createTask({ outcome: 'never' })
  const before = calls()
  const first = await p.fetchTask(id)
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(first.headers['cache-control'], 'no-cache')
  const second = await q.fetchTask(id)
  t.equal(second.headers['x-cache'], 'HIT', 'the other replica reuses it within POLL_CACHE_MS')
  t.equal(second.headers['cache-control'], 'no-cache', 'a live task is never cacheable by the client')
  t.equal(second.text, first.text)
  t.equal(calls() - before, 1)
  const pttl = await redis.admin().pttl(`mjgw:${fingerprint(KEY_A)}:poll:${id}`)
  t.ok(pttl > 0 && pttl <= 1500, `PX is POLL_CACHE_MS (got ${pttl})`)
  await sleep(1600)
  t.equal((await q.fetchTask(id)).headers['x-cache'], 'MISS', 'after POLL_CACHE_MS it is asked again')
  t.equal(calls() - before, 2)
})

t.test('docs/caching.md §3 POLL_CACHE_MS=0: no live task is reused across replicas, and none is written to Redis', async (t) => {
  const [p, q] = await replicas(2, { POLL_CACHE_MS: '0' })
  if (p === undefined || q === undefined) throw new Error('no replicas')
  const id = sim.createTask({ outcome: 'never' })
  const before = calls()
  t.equal((await p.fetchTask(id)).headers['x-cache'], 'MISS')
  t.equal((await q.fetchTask(id)).headers['x-cache'], 'MISS')
  t.equal((await p.fetchTask(id)).headers['x-cache'], 'MISS')
  t.equal(calls() - before, 3)
  t.same(await redis.admin().keys(`*:poll:${id}`), [])
})

t.test('a value of the wrong type under a task key is a miss, not an error, and is replaced', async (t) => {
  const id = sim.finishedTask()
  const key = `mjgw:${fingerprint(KEY_A)}:task:${id}`
  await redis.admin().rpush(key, 'not a string')
  const res = await a.fetchTask(id)
  t.equal(res.status, 200)
  t.equal(res.headers['x-cache'], 'MISS')
  await sleep(50)
  t.equal(await redis.admin().type(key), 'string', 'the terminal write replaced it')
  t.ok(a.logLines().some((l) => l.includes('redis: command failed')), 'the failure was logged')
  t.equal((await b.fetchTask(id)).headers['x-cache'], 'HIT')
})

t.test('docs/http-api.md §7 /readyz names redis up; docs/metrics.md §5 mj_gateway_redis_up is 1', async (t) => {
  const res = await a.get('/readyz')
  t.equal(res.status, 200)
  t.same(res.json(), { status: 'ready', redis: 'up' })
  t.equal(await a.metric('mj_gateway_redis_up'), 1)
})

t.test('docs/metrics.md §5 with REDIS_URL, /metrics exports every metric the dashboard and alerts read, hit_shared from zero', async (t) => {
  const [r] = await replicas(1)
  if (r === undefined) throw new Error('no replica')
  const text = await r.metrics()
  const exported = new Set(text.split('\n').flatMap((l) => /^# TYPE (\S+) /.exec(l)?.[1] ?? []))
  for (const name of metricNamesUsedByDeployFiles()) t.ok(exported.has(name), `${name} is exported`)
  t.equal(await r.metric(HIT_SHARED), 0)
  t.match(text, /^# TYPE mj_gateway_redis_up gauge$/m)
})

t.test('docs/http-api.md §7, docs/metrics.md §5 without REDIS_URL: /readyz says redis off, and neither redis_up nor hit_shared is exported', async (t) => {
  const r = await startGateway(t, { LOG_LEVEL: 'info', UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: KEY_A })
  const res = await r.get('/readyz')
  t.equal(res.status, 200)
  t.same(res.json(), { status: 'ready', redis: 'off' })
  t.equal(await r.metric('mj_gateway_redis_up'), undefined)
  t.equal(await r.metric(HIT_SHARED), undefined)
  const id = sim.finishedTask()
  await r.fetchTask(id)
  t.equal((await r.fetchTask(id)).headers['x-cache'], 'HIT')
})

t.test('closing an app closes its Redis client quietly', async (t) => {
  const clients = async (): Promise<number> => Number(/connected_clients:(\d+)/.exec(await redis.admin().info('clients'))?.[1])
  // counted before the app starts: it holds the shared tier's connection and, since push (CONTRACT §11), the relay's
  // pub/sub subscriber too; closing it must close every one of them
  const clientsBefore = await clients()
  const [r] = await replicas(1)
  if (r === undefined) throw new Error('no replica')
  t.ok((await clients()) > clientsBefore, 'the app holds connections')
  await r.app.close()
  // Redis notices a closed connection a moment later
  await waitFor(async () => (await clients()) === clientsBefore, 5000).catch(() => undefined)
  t.equal(await clients(), clientsBefore, 'its connections are gone')
  t.notOk(r.logLines().some((l) => l.includes('connection lost')), 'a deliberate close is not reported as a lost connection')
})
