/**
 * A Redis that hangs (SIGSTOP: socket open, no answers) is a Redis that is down (docs/operations-resilience.md,
 * "Redis"): memory hits do not wait on it (a client's first rate-limit report of the minute aside, at most the
 * command timeout), a few timeouts in a row open the breaker (redis down in /readyz and mj_gateway_redis_up), a
 * probe closes it once Redis answers again, and rate limits hold all along.
 */
import t from 'tap'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { startRedisServer } from './helpers/redis-server.js'
import { startGateway } from './helpers/gateway.js'

const KEY = 'hang-upstream-key-2718281828'
const TOKEN = 'tok-hang-client-0123456789'

const sim = await startSimulatedUpstream({ latencyMs: 5 })
t.teardown(() => sim.close())

t.test('SIGSTOPped Redis: hits never wait, misses stop waiting after the breaker opens, limits hold, and it recovers', async (t) => {
  const redis = await startRedisServer(t)
  t.teardown(() => redis.resume())
  const env = { UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: KEY, REDIS_URL: redis.url, CLIENT_KEYS: `team:${TOKEN},other:tok-other-9876543210`, RATE_LIMIT_PER_MINUTE: '1000' }
  const r = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  await r.waitRedis('up')
  const auth = { authorization: `Bearer ${TOKEN}` }
  const cached = sim.finishedTask()
  t.equal((await r.get(`/mj/task/${cached}/fetch`, auth)).headers['x-cache'], 'MISS')

  redis.pause()
  // 50 cached hits: on the old design each cost a Redis round trip up to the 200 ms command timeout (10 s in all)
  const started = Date.now()
  for (let i = 0; i < 50; i++) {
    const res = await r.get(`/mj/task/${cached}/fetch`, auth)
    t.equal(res.headers['x-cache'], 'HIT')
  }
  const hitsMs = Date.now() - started
  t.ok(hitsMs < 2500, `50 memory hits while Redis hangs took ${hitsMs} ms (no Redis round trip)`)

  // misses ask Redis first: three timeouts in a row open the breaker
  for (let i = 0; i < 3; i++) t.equal((await r.get(`/mj/task/${sim.finishedTask()}/fetch`, auth)).status, 200)
  await r.waitRedis('down')
  t.equal(await r.metric('mj_gateway_redis_up'), 0, 'mj_gateway_redis_up 0 while the breaker is open')
  const missStarted = Date.now()
  for (let i = 0; i < 10; i++) t.equal((await r.get(`/mj/task/${sim.finishedTask()}/fetch`, auth)).headers['x-cache'], 'MISS')
  const missMs = Date.now() - missStarted
  t.ok(missMs < 1500, `10 misses with the breaker open took ${missMs} ms (none waited for Redis)`)
  t.ok(r.logLines().some((l) => l.includes('redis: not answering')), 'the breaker opening is logged')

  redis.resume()
  await r.waitRedis('up')
  t.equal(await r.metric('mj_gateway_redis_up'), 1, 'a probe closed the breaker')
  t.ok(r.logLines().some((l) => l.includes('redis: answering again')))
})

t.test('a client over its limit stays over it while Redis hangs, and on a replica that starts meanwhile, once it has reported', async (t) => {
  const redis = await startRedisServer(t)
  t.teardown(() => redis.resume())
  const env = { UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: KEY, REDIS_URL: redis.url, CLIENT_KEYS: `team:${TOKEN}`, RATE_LIMIT_PER_MINUTE: '5' }
  const a = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  await a.waitRedis('up')
  const auth = { authorization: `Bearer ${TOKEN}` }
  const id = sim.finishedTask()
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await a.get(`/mj/task/${id}/fetch`, auth)).status)
  t.same(statuses, [200, 200, 200, 200, 200, 429])
  // let the replica report (at most 100 ms)
  await new Promise((r) => setTimeout(r, 300))
  const b = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  await b.waitRedis('up')
  // all at once: the ones that reach b while its first report is under way wait for that report
  const fresh = (await Promise.all(Array.from({ length: 5 }, () => b.get(`/mj/task/${id}/fetch`, auth)))).map((r) => r.status)
  t.ok(fresh.filter((s) => s === 200).length <= 1, `a replica started later lets through at most its first request (${fresh.join(' ')})`)
  t.ok(fresh.filter((s) => s === 429).length >= 4, 'the rest are refused')
  t.equal((await b.get(`/mj/task/${id}/fetch`, auth)).status, 429)

  redis.pause()
  for (let i = 0; i < 5; i++) t.equal((await a.get(`/mj/task/${id}/fetch`, auth)).status, 429, 'Redis hangs: still over the limit')
  redis.resume()
})
