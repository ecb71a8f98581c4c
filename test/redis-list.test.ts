import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { fingerprint } from '../src/config.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { startRedisServer } from './helpers/redis-server.js'
import { startGateway, type Gateway } from './helpers/gateway.js'

const TOKEN = 'list-client-token-0123456789'
const LIST = 'POST /mj/task/list-by-condition'

const redis = await startRedisServer(t)
const sim = await startSimulatedUpstream()
t.teardown(() => sim.close())
const env = { UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: 'k-list', REDIS_URL: redis.url, CLIENT_KEYS: `team:${TOKEN}`, RATE_LIMIT_PER_MINUTE: '0' }

async function list(gw: Gateway, ids: string[]): Promise<{ status: number; hits: string | undefined; body: unknown }> {
  const res = await gw.post('/mj/task/list-by-condition', { ids }, { authorization: `Bearer ${TOKEN}` })
  return { status: res.status, hits: res.headers['x-cache-hits'], body: res.json() }
}

t.test('docs/caching.md §9 list-by-condition with REDIS_URL: terminal tasks another replica cached count as cached, without an upstream call', async (t) => {
  const a = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  const b = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  await a.waitRedis('up')
  await b.waitRedis('up')
  const [x, y] = [sim.finishedTask(), sim.finishedTask()]
  t.equal((await a.get(`/mj/task/${x}/fetch`, { authorization: `Bearer ${TOKEN}` })).headers['x-cache'], 'MISS')
  await sleep(50) // the Redis write is fire-and-forget

  const first = await list(b, [x])
  t.equal(first.status, 200)
  t.equal(first.hits, '1', 'answered from the shared tier')
  t.equal(sim.stats.byRoute[LIST] ?? 0, 0, 'no upstream list call')
  t.equal(await b.metric('mj_gateway_cache_lookups_total{result="hit_shared"}'), 1)

  const second = await list(a, [y, x])
  t.equal(second.hits, '1')
  t.same((second.body as { id: string }[]).map((task) => task.id), [y, x], 'in the requested order')
  t.equal(sim.stats.byRoute[LIST], 1, 'one upstream call for the id nobody had')
  await sleep(50)
  const third = await list(b, [y])
  t.equal(third.hits, '1', 'the terminal result of that call was shared too')
  t.equal(sim.stats.byRoute[LIST], 1)
})

t.test('docs/caching.md §9 list-by-condition with REDIS_URL: a Redis error on a lookup is a miss, never a failed request', async (t) => {
  const a = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  await a.waitRedis('up')
  const id = sim.finishedTask()
  // a key of the wrong type makes GET fail with WRONGTYPE, as a broken shared tier might
  await redis.admin().hset(`mjgw:${fingerprint('k-list')}:task:${id}`, 'x', '1')
  const before = sim.stats.byRoute[LIST] ?? 0
  const res = await list(a, [id])
  t.equal(res.status, 200)
  t.equal(res.hits, '0')
  t.same((res.body as { id: string }[]).map((task) => task.id), [id], 'answered from upstream')
  t.equal((sim.stats.byRoute[LIST] ?? 0) - before, 1)
})

t.test('docs/caching.md §9 list-by-condition with REDIS_URL: a shared entry without a TTL is not trusted (a miss)', async (t) => {
  const a = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  await a.waitRedis('up')
  const id = sim.finishedTask()
  await redis.admin().set(`mjgw:${fingerprint('k-list')}:task:${id}`, '{"id":"forged"}')
  const res = await list(a, [id])
  t.equal(res.hits, '0')
  t.same((res.body as { id: string }[]).map((task) => task.id), [id], 'answered from upstream, not from the TTL-less key')
})
