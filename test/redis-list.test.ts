import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { fingerprint } from '../src/config.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { startRedisServer } from './helpers/redis-server.js'
import { get, metric, startReplica, waitRedis } from './helpers/replicas.js'

const TOKEN = 'list-client-token-0123456789'
const LIST = 'POST /mj/task/list-by-condition'

const redis = await startRedisServer(t)
const sim = await startSimulatedUpstream()
t.teardown(() => sim.close())
const env = { UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: 'k-list', REDIS_URL: redis.url, CLIENT_KEYS: `team:${TOKEN}`, RATE_LIMIT_PER_MINUTE: '0' }

async function list(base: string, ids: string[]): Promise<{ status: number; hits: string | null; body: unknown }> {
  const res = await fetch(`${base}/mj/task/list-by-condition`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ ids })
  })
  return { status: res.status, hits: res.headers.get('x-cache-hits'), body: await res.json() }
}

t.test('docs/caching.md §9 list-by-condition with REDIS_URL: terminal tasks another replica cached count as cached, without an upstream call', async (t) => {
  const a = await startReplica(t, env)
  const b = await startReplica(t, env)
  await waitRedis(a, 'up')
  await waitRedis(b, 'up')
  const [x, y] = [sim.finishedTask(), sim.finishedTask()]
  t.equal((await get(a.url, `/mj/task/${x}/fetch`, { authorization: `Bearer ${TOKEN}` })).headers.get('x-cache'), 'MISS')
  await sleep(50) // the Redis write is fire-and-forget

  const first = await list(b.url, [x])
  t.equal(first.status, 200)
  t.equal(first.hits, '1', 'answered from the shared tier')
  t.equal(sim.stats.byRoute[LIST] ?? 0, 0, 'no upstream list call')
  t.equal(await metric(b, 'mj_gateway_cache_lookups_total{result="hit_shared"}'), 1)

  const second = await list(a.url, [y, x])
  t.equal(second.hits, '1')
  t.same((second.body as { id: string }[]).map((task) => task.id), [y, x], 'in the requested order')
  t.equal(sim.stats.byRoute[LIST], 1, 'one upstream call for the id nobody had')
  await sleep(50)
  const third = await list(b.url, [y])
  t.equal(third.hits, '1', 'the terminal result of that call was shared too')
  t.equal(sim.stats.byRoute[LIST], 1)
})

t.test('docs/caching.md §9 list-by-condition with REDIS_URL: a Redis error on a lookup is a miss, never a failed request', async (t) => {
  const a = await startReplica(t, env)
  await waitRedis(a, 'up')
  const id = sim.finishedTask()
  // a key of the wrong type makes GET fail with WRONGTYPE, as a broken shared tier might
  await redis.admin().hset(`mjgw:${fingerprint('k-list')}:task:${id}`, 'x', '1')
  const before = sim.stats.byRoute[LIST] ?? 0
  const res = await list(a.url, [id])
  t.equal(res.status, 200)
  t.equal(res.hits, '0')
  t.same((res.body as { id: string }[]).map((task) => task.id), [id], 'answered from upstream')
  t.equal((sim.stats.byRoute[LIST] ?? 0) - before, 1)
})

t.test('docs/caching.md §9 list-by-condition with REDIS_URL: a shared entry without a TTL is not trusted (a miss)', async (t) => {
  const a = await startReplica(t, env)
  await waitRedis(a, 'up')
  const id = sim.finishedTask()
  await redis.admin().set(`mjgw:${fingerprint('k-list')}:task:${id}`, '{"id":"forged"}')
  const res = await list(a.url, [id])
  t.equal(res.hits, '0')
  t.same((res.body as { id: string }[]).map((task) => task.id), [id], 'answered from upstream, not from the TTL-less key')
})
