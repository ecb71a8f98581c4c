import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { startRedisServer } from './helpers/redis-server.js'
import { startGateway, type Gateway } from './helpers/gateway.js'

const KEY = 'outage-upstream-key-3141592653'

const sim = await startSimulatedUpstream({ latencyMs: 10 })
t.teardown(() => sim.close())

const env = (redisUrl: string, extra: Record<string, string> = {}): Record<string, string> => ({
  LOG_LEVEL: 'info',
  UPSTREAM_BASE_URL: sim.url,
  UPSTREAM_API_KEY: KEY,
  REDIS_URL: redisUrl,
  // the traffic here is one address well past 600 a minute; since counts survive an outage (docs/access-control.md
  // §3) the limit would refuse it, and this file is about serving through the outage, not about the limit
  RATE_LIMIT_PER_MINUTE: '0',
  ...extra
})

async function readyz(r: Gateway): Promise<{ status: number; body: unknown }> {
  const res = await r.get('/readyz')
  return { status: res.status, body: JSON.parse(res.text) }
}

t.test('docs/operations.md §7 Redis killed mid-traffic: no request fails, /readyz stays 200 with redis down, the gauge follows, sharing resumes', async (t) => {
  const redis = await startRedisServer(t)
  const replicas = [await startGateway(t, env(redis.url)), await startGateway(t, env(redis.url))]
  for (const r of replicas) await r.waitRedis('up')
  const [a, b] = replicas as [Gateway, Gateway]

  const terminal = Array.from({ length: 5 }, () => sim.finishedTask())
  const live = Array.from({ length: 5 }, () => sim.createTask({ outcome: 'never' }))
  const failures: string[] = []
  let served = 0
  let running = true
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const r = replicas[(w + i) % 2] as Gateway
      const pick = i % 3
      const id = pick === 0 ? (terminal[i % 5] as string) : pick === 1 ? (live[i % 5] as string) : sim.finishedTask()
      try {
        const res = await r.fetchTask(id)
        if (res.status === 200) served++
        else failures.push(`${res.status} ${res.text}`)
      } catch (err) {
        failures.push(String(err))
      }
    }
  }
  const traffic = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)))

  await sleep(300)
  await redis.kill()
  for (const r of replicas) await r.waitRedis('down')
  t.same(await readyz(a), { status: 200, body: { status: 'ready', redis: 'down' } }, '/readyz: 200, redis down')
  t.equal(await a.metric('mj_gateway_redis_up'), 0, 'mj_gateway_redis_up 0 while it is down')
  const servedWhileDown = served
  await sleep(500)
  t.ok(served > servedWhileDown, `requests are served while Redis is down (${served - servedWhileDown} in 0.5 s)`)

  await redis.start()
  for (const r of replicas) await r.waitRedis('up')
  t.equal(await a.metric('mj_gateway_redis_up'), 1, 'the gauge returns to 1 after reconnection')
  t.equal(await b.metric('mj_gateway_redis_up'), 1)
  await sleep(300)
  running = false
  await traffic
  t.same(failures, [], `no failed request out of ${served}`)

  const id = sim.finishedTask()
  t.equal((await a.fetchTask(id)).headers['x-cache'], 'MISS')
  t.equal((await b.fetchTask(id)).headers['x-cache'], 'HIT', 'sharing works again on the restarted (empty) Redis')
  // each kind of trouble is logged once or twice, however many requests met it (a busy machine can add a breaker
  // opening after the restart: a line of its own)
  const byMessage = new Map<string, number>()
  for (const l of a.logLines().filter((l) => l.includes('"level":40') && l.includes('redis:'))) {
    const msg = (JSON.parse(l) as { msg: string }).msg
    byMessage.set(msg, (byMessage.get(msg) ?? 0) + 1)
  }
  const counts = [...byMessage].map(([m, n]) => `${n}× ${m}`).join('; ')
  t.ok(byMessage.size >= 1, 'Redis trouble is logged')
  t.ok(Math.max(...byMessage.values()) <= 3, `each kind a few times, not once per request of ${served} (${counts})`)
  t.ok(a.logLines().some((l) => l.includes('redis: connection lost')), 'the loss is logged')
})

t.test('docs/operations.md §7 a Redis that never answers costs a request at most the command timeout', async (t) => {
  const redis = await startRedisServer(t)
  const r = await startGateway(t, env(redis.url))
  await r.waitRedis('up')
  const closing = await startGateway(t, env(redis.url))
  await closing.waitRedis('up')
  // paused far longer than the bounds below (generous for a busy machine): waiting for Redis would show
  await redis.admin().call('CLIENT', 'PAUSE', '10000', 'ALL')
  const started = Date.now()
  const res = await r.fetchTask(sim.finishedTask())
  const elapsed = Date.now() - started
  t.equal(res.status, 200)
  t.equal(res.headers['x-cache'], 'MISS')
  t.ok(elapsed < 5000, `answered while Redis hangs (${elapsed} ms, Redis paused for 10000 ms)`)
  t.equal(await r.metric('mj_gateway_redis_up'), 1, 'the connection itself is still up')
  const closeStarted = Date.now()
  await closing.app.close()
  t.ok(Date.now() - closeStarted < 5000, `closing does not wait for a hung Redis (${Date.now() - closeStarted} ms)`)
})

t.test('docs/operations.md §7 a REDIS_URL nobody answers: the gateway starts and serves; /readyz 200 with redis down; one warning', async (t) => {
  const redis = await startRedisServer(t)
  await redis.kill()
  const r = await startGateway(t, env(redis.url))
  const res = await r.fetchTask(sim.finishedTask())
  t.equal(res.status, 200)
  t.equal(res.headers['x-cache'], 'MISS')
  t.same(await readyz(r), { status: 200, body: { status: 'ready', redis: 'down' } })
  t.equal(await r.metric('mj_gateway_redis_up'), 0)
  t.equal(await r.metric('mj_gateway_cache_lookups_total{result="hit_shared"}'), 0, 'hit_shared starts at zero')
  await sleep(700) // several reconnect attempts
  t.equal(r.logLines().filter((l) => l.includes('redis: connection error')).length, 1, 'connection errors are not logged per attempt')
})

t.test('docs/access-control.md §8 the Redis password never appears in a log line, error or response', async (t) => {
  const password = 'redis-pw-Sup3r/Secret'
  const wrong = 'wrong-pw-N0t:Logged'
  const redis = await startRedisServer(t, { password })
  const good = await startGateway(t, env(redis.url))
  await good.waitRedis('up')
  const bad = await startGateway(t, env(`redis://:${encodeURIComponent(wrong)}@127.0.0.1:${redis.port}`))
  await sleep(300)
  t.same(await readyz(bad), { status: 200, body: { status: 'ready', redis: 'down' } }, 'a wrong password: redis down, still ready')
  t.equal((await bad.fetchTask(sim.finishedTask())).status, 200)
  const id = sim.finishedTask()
  await good.fetchTask(id)
  t.equal((await good.fetchTask(id)).headers['x-cache'], 'HIT')
  t.ok(bad.logLines().some((l) => /WRONGPASS|NOAUTH/.test(l)), 'the auth failure is logged')
  const everything = [...good.logLines(), ...bad.logLines(), (await good.get('/metrics')).text, (await bad.get('/metrics')).text].join('\n')
  for (const secret of [password, wrong, encodeURIComponent(password), encodeURIComponent(wrong), KEY]) {
    t.notOk(everything.includes(secret), 'no secret in logs or metrics')
  }
})

t.test('docs/configuration.md §7 a REDIS_URL that does not parse stops start-up with one line that does not echo it', async (t) => {
  const bad = 'redis://:p%zz-secret@127.0.0.1:6379'
  t.throws(() => loadConfig({ UPSTREAM_API_KEY: KEY, REDIS_URL: bad }), ConfigError)
  try {
    loadConfig({ UPSTREAM_API_KEY: KEY, REDIS_URL: bad })
  } catch (err) {
    t.match((err as Error).message, /^REDIS_URL: /)
    t.notOk((err as Error).message.includes('secret'))
  }
  t.throws(() => loadConfig({ UPSTREAM_API_KEY: KEY, REDIS_URL: 'http://127.0.0.1:6379' }), /REDIS_URL: must start with redis:\/\//)
})
