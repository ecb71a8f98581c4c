import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { fingerprint } from '../src/config.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { startRedisServer } from './helpers/redis-server.js'
import { startGateway, type Gateway } from './helpers/gateway.js'
import type { HttpResult } from './helpers/net.js'

const KEY = 'single-flight-upstream-key'
const FETCHES = 'GET /mj/task/:id/fetch'

const redis = await startRedisServer(t)
const sim = await startSimulatedUpstream({ latencyMs: 200 })
t.teardown(() => sim.close())
const calls = (): number => sim.stats.byRoute[FETCHES] ?? 0
// for tests that need every poller to arrive while the first upstream call is still in flight
const slow = await startSimulatedUpstream({ latencyMs: 1000 })
t.teardown(() => slow.close())

async function replicas(n: number, env: Record<string, string> = {}): Promise<Gateway[]> {
  const out: Gateway[] = []
  for (let i = 0; i < n; i++) {
    const r = await startGateway(t, { LOG_LEVEL: 'info', UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: KEY, REDIS_URL: redis.url, ...env })
    await r.waitRedis('up')
    out.push(r)
  }
  return out
}

/** `pollers` concurrent fetches of one id, spread round-robin over the replicas */
function storm(rs: Gateway[], id: string, pollers: number): Promise<HttpResult[]> {
  return Promise.all(Array.from({ length: pollers }, (_, i) => (rs[i % rs.length] as Gateway).fetchTask(id)))
}

function tally(answers: HttpResult[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const a of answers) {
    const k = `${a.status} ${a.headers['x-cache'] ?? '-'}`
    out[k] = (out[k] ?? 0) + 1
  }
  return out
}

const three = await replicas(3)

t.test('docs/caching.md §4 across replicas: 3 replicas, 60 concurrent pollers of one new live task → one upstream call', async (t) => {
  const id = sim.createTask({ outcome: 'never' })
  const before = calls()
  const answers = await storm(three, id, 60)
  const warnings = three.flatMap((r) => r.logLines().filter((l) => l.includes('redis: command failed')))
  t.equal(calls() - before, 1, `one upstream call${warnings.length === 0 ? '' : ` (Redis trouble: ${warnings.join(' ')})`}`)
  const counts = tally(answers)
  t.equal(counts['200 MISS'], 1, 'exactly one response caused the upstream call')
  t.equal((counts['200 COALESCED'] ?? 0) + (counts['200 HIT'] ?? 0), 59, `the rest waited for it or reused it: ${JSON.stringify(counts)}`)
  t.equal(new Set(answers.map((a) => a.text)).size, 1, 'every poller got the same bytes')
  let misses = 0
  for (const r of three) misses += (await r.metric('mj_gateway_cache_lookups_total{result="miss"}')) ?? 0
  t.equal(misses, 1, 'one miss over all replicas’ metrics')
})

t.test('docs/caching.md §4 across replicas: 60 concurrent pollers of one new terminal task → one upstream call, all cacheable', async (t) => {
  const id = sim.finishedTask()
  const before = calls()
  const answers = await storm(three, id, 60)
  t.equal(calls() - before, 1)
  t.equal(tally(answers)['200 MISS'], 1)
  t.ok(answers.every((a) => /^private, max-age=\d+$/.test(a.headers['cache-control'] ?? '')), 'every answer is cacheable')
})

t.test('docs/caching.md §4 with POLL_CACHE_MS=0, concurrent pollers on several replicas still share one upstream call', async (t) => {
  // The slow upstream: every poller arrives while the one call is in flight (a poll after it must ask again).
  const rs = await replicas(3, { POLL_CACHE_MS: '0', UPSTREAM_BASE_URL: slow.url })
  const id = slow.createTask({ outcome: 'never' })
  const answers = await storm(rs, id, 30)
  t.equal(slow.stats.byRoute[FETCHES], 1, 'one upstream call (the holder hands its result to the replicas that waited)')
  t.equal(new Set(answers.map((a) => a.text)).size, 1)
  t.ok(answers.every((a) => a.headers['cache-control'] === 'no-cache'), 'a live task is never cacheable')
  t.same(await redis.admin().keys(`*:poll:${id}`), [], 'nothing cached for later pollers')
  t.equal((await (rs[0] as Gateway).fetchTask(id)).headers['x-cache'], 'MISS', 'a later poll asks upstream again')
  t.equal(slow.stats.byRoute[FETCHES], 2)
})

t.test('docs/caching.md §4 an unknown id (upstream answers null) is never shared: a waiting replica asks itself, once', async (t) => {
  const rs = await replicas(3, { UPSTREAM_BASE_URL: slow.url })
  const before = slow.stats.byRoute[FETCHES] ?? 0
  const answers = await storm(rs, 'no-such-task-id', 30)
  t.ok(answers.every((a) => a.status === 404 && (JSON.parse(a.text) as { code: string }).code === 'MJGW_TASK_NOT_FOUND'), 'all 404 MJGW_TASK_NOT_FOUND')
  t.equal((slow.stats.byRoute[FETCHES] ?? 0) - before, 3, 'the lock holder’s call, then one per other replica')
  const keys = await redis.admin().keys('*no-such-task-id*')
  t.same(keys.filter((k) => !k.includes(':done:')), [], 'nothing stored')
})

t.test('a lock whose holder died: replicas wait a bounded time, then call upstream themselves', async (t) => {
  const [r] = await replicas(1, { UPSTREAM_TIMEOUT_MS: '1500' })
  if (r === undefined) throw new Error('no replica')
  const id = sim.finishedTask()
  await redis.admin().set(`mjgw:${fingerprint(KEY)}:lock:${id}`, 'a-replica-that-crashed', 'PX', 60_000)
  const before = calls()
  const started = Date.now()
  const res = await r.fetchTask(id)
  const elapsed = Date.now() - started
  t.equal(res.status, 200)
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal(calls() - before, 1)
  t.ok(elapsed >= 1400, `it waited for the holder first, min(3 s, UPSTREAM_TIMEOUT_MS) (${elapsed} ms)`)
  t.ok(elapsed < 6000, `but not for long (${elapsed} ms)`)
  await sleep(50)
  t.ok((await redis.admin().exists(`mjgw:${fingerprint(KEY)}:task:${id}`)) === 1, 'its result is shared all the same')
  t.equal(await redis.admin().get(`mjgw:${fingerprint(KEY)}:lock:${id}`), 'a-replica-that-crashed', 'another holder’s lock is left alone')
})

t.test('docs/caching.md §4 bodies nobody may cache are handed to waiting replicas, never stored', async (t) => {
  // An upstream that answers slowly with a body for another id, or a SUCCESS whose imageUrl expires inside the margin.
  const hits: Record<string, number> = {}
  const up = await startSimulatedUpstream({
    handler: (req) => {
      const id = /\/mj\/task\/([^/]+)\/fetch/.exec(req.url)?.[1] ?? ''
      hits[id] = (hits[id] ?? 0) + 1
      const ex = Math.floor(Date.now() / 1000 + 60).toString(16)
      const body =
        id === 'foreign'
          ? { id: 'somebody-else', status: 'SUCCESS' }
          : { id, status: 'SUCCESS', imageUrl: `https://cdn.example.com/a.png?ex=${ex}&is=0&hm=0` }
      return { kind: 'json', body, delayMs: 1000 }
    }
  })
  t.teardown(() => up.close())
  const rs: Gateway[] = []
  for (let i = 0; i < 3; i++) {
    const r = await startGateway(t, { LOG_LEVEL: 'info', UPSTREAM_BASE_URL: up.url, UPSTREAM_API_KEY: KEY, REDIS_URL: redis.url })
    await r.waitRedis('up')
    rs.push(r)
  }
  for (const id of ['foreign', 'expiring']) {
    const answers = await storm(rs, id, 30)
    t.equal(hits[id], 1, `${id}: one upstream call for 30 pollers on 3 replicas`)
    t.equal(new Set(answers.map((a) => a.text)).size, 1)
    t.ok(answers.every((a) => a.status === 200 && a.headers['cache-control'] === 'no-cache'), `${id}: 200, never cacheable`)
    const keys = await redis.admin().keys(`*:${id}`)
    t.same(keys.filter((k) => !k.includes(':done:')), [], `${id}: no task or poll key`)
    t.equal((await (rs[1] as Gateway).fetchTask(id)).headers['x-cache'], 'MISS', `${id}: the next poll asks again`)
    t.equal(hits[id], 2)
  }
})
