import t, { type Test } from 'tap'
import { sample, startGateway, type Gateway } from './helpers/gateway.js'
import { startSimulatedUpstream, taskBody } from '../src/demo/simulated-upstream.js'
import { startRedisServer } from './helpers/redis-server.js'
import { openSse } from './helpers/sse-client.js'
import { taskWorld } from './helpers/task-world.js'
import { post, waitFor } from './helpers/net.js'
import { notifySecret } from '../src/push/notify-hook.js'
import pino from 'pino'
import { RedisConnection } from '../src/redis/connection.js'
import { RedisRelay } from '../src/push/redis-relay.js'
import { WatchHub } from '../src/push/watch-hub.js'
import { TaskCache } from '../src/cache/task-cache.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const KEY = 'upstream-key-push-redis-4471'

const redis = await startRedisServer(t)
const upstream = await startSimulatedUpstream({ inventUnknownTasks: true })
t.teardown(() => upstream.close())
const world = taskWorld(upstream)

async function replica(t: Test): Promise<Gateway> {
  const gw = await startGateway(t, { REDIS_URL: redis.url, UPSTREAM_API_KEY: KEY, REFRESH_INTERVAL_MS: '100', PUBLIC_URL: 'https://gw.example' }, { upstreamUrl: upstream.url })
  await waitFor(async () => sample(await gw.metrics(), 'mj_gateway_redis_up') === 1)
  return gw
}

t.test('docs/push.md §6: with REDIS_URL one replica refreshes, every replica’s subscribers get the changes, the lock moves when its holder dies', async (t) => {
  // a alone first: it takes the lock
  const a = await replica(t)
  world.set('r1', 'IN_PROGRESS', { progress: '1%' })
  world.set('r2', 'IN_PROGRESS', { progress: '1%' })
  world.set('r3', 'IN_PROGRESS', { progress: '1%' })
  const onA = await openSse(`${a.url}/mj/task/r1/events`)
  await onA.waitForEvents(1)
  const listed = world.listCalls
  await waitFor(() => world.listCalls > listed)
  const b = await replica(t)
  const onB = await openSse(`${b.url}/mj/tasks/events?ids=r1,r2,r3`)
  await onB.waitForEvents(3)

  await sleep(300)
  const before = world.listCalls
  const began = Date.now()
  await sleep(1500)
  const rounds = (Date.now() - began) / 100
  const calls = world.listCalls - before
  t.ok(calls <= rounds + 2, `${calls} list calls in ${rounds.toFixed(0)} intervals from two replicas: one refreshes`)
  t.ok(world.listed.slice(-3).some((ids) => ids.includes('r2')), 'tasks watched only on another replica are refreshed too')

  world.set('r1', 'IN_PROGRESS', { progress: '50%' })
  world.set('r2', 'IN_PROGRESS', { progress: '60%' })
  await onA.waitForEvents(2)
  await onB.waitForEvents(5)
  t.equal(JSON.parse(onA.events[1]?.data ?? '').progress, '50%')
  t.same(
    onB.events.slice(3).map((e) => JSON.parse(e.data).progress).sort(),
    ['50%', '60%']
  )

  // a callback on one replica reaches the subscribers of the other
  const update = world.set('r2', 'IN_PROGRESS', { progress: '61%' })
  const cb = await post(`${a.url}/gateway/notify/${notifySecret(KEY)}`, update, { 'content-type': 'application/json' })
  t.equal(cb.status, 200, 'r2 is watched on b only: a knows it through Redis')
  await onB.waitForEvents(6)
  t.equal(onB.events[5]?.data, update)

  // the other way round: b does not refresh, so only Redis tells it that a subscriber on a watches r4
  world.set('r4', 'IN_PROGRESS', { progress: '5%' })
  const r4OnA = await openSse(`${a.url}/mj/task/r4/events`)
  await r4OnA.waitForEvents(1)
  const r4 = world.set('r4', 'IN_PROGRESS', { progress: '6%' })
  await waitFor(async () => (await post(`${b.url}/gateway/notify/${notifySecret(KEY)}`, r4, { 'content-type': 'application/json' })).status === 200)
  await r4OnA.waitForEvents(2)
  t.equal(r4OnA.events[1]?.data, r4, 'a callback on b for a task watched only on a reaches a’s subscriber')
  r4OnA.close()

  // a task gone upstream: the replica that refreshes finds out, the other one's subscriber is told
  world.remove('r3')
  await onB.waitForEvents(7)
  t.equal(onB.events[6]?.event, 'error')
  t.match(JSON.parse(onB.events[6]?.data ?? ''), { id: 'r3', code: 'MJGW_TASK_NOT_FOUND' })

  // the leader goes: the other takes over
  onA.close()
  await a.app.close()
  world.set('r2', 'SUCCESS')
  world.set('r1', 'SUCCESS')
  await onB.waitForEnd(15_000)
  t.same(
    onB.events.map((e) => e.event).slice(-3),
    ['task', 'task', 'end']
  )
})

t.test('docs/push.md §6: a replica that cannot reach Redis refreshes its own subscribers', async (t) => {
  const gw = await startGateway(t, { REDIS_URL: 'redis://127.0.0.1:1', UPSTREAM_API_KEY: KEY, REFRESH_INTERVAL_MS: '100', PUBLIC_URL: 'https://gw.example' }, { upstreamUrl: upstream.url })
  world.set('d1', 'IN_PROGRESS')
  const s = await openSse(`${gw.url}/mj/task/d1/events`)
  await s.waitForEvents(1)
  const cb = await post(`${gw.url}/gateway/notify/${notifySecret(KEY)}`, JSON.stringify(taskBody('elsewhere', 'SUCCESS')), { 'content-type': 'application/json' })
  t.equal(cb.status, 404, 'a callback for a task not watched here, with Redis unable to say: ignored')
  world.set('d1', 'SUCCESS')
  await s.waitForEnd(10_000)
  t.same(
    s.events.map((e) => e.event),
    ['task', 'task', 'end']
  )
})

t.test('docs/push.md §6: a lock whose holder died moves to another replica once its lease runs out', async (t) => {
  const log = pino({ level: 'silent' })
  const relays = [0, 1].map(() => {
    const conn = new RedisConnection({ url: redis.url, log, onState: () => undefined })
    t.teardown(() => conn.close())
    const hub = new WatchHub({ cache: new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 }), rules: { ttlSeconds: 60, urlExpiryMarginSeconds: 0, pollCacheMs: 0 }, intervalMs: 100, watchIdleMs: 0 })
    return { conn, relay: new RedisRelay(conn, { hub, namespace: 'lease-test', intervalMs: 100, log }) }
  })
  const [one, two] = relays as [(typeof relays)[0], (typeof relays)[0]]
  await waitFor(() => one.conn.up && two.conn.up)
  t.equal(await one.relay.lead(), true)
  t.equal(await two.relay.lead(), false)
  t.equal(await one.relay.lead(), true, 'the holder renews')
  // one dies without a word: two waits out the lease (3 s), then leads
  const died = Date.now()
  await waitFor(() => two.relay.lead(), 6000)
  t.ok(Date.now() - died >= 2500, 'not before the lease ran out')
  t.equal(await one.relay.lead(), false, 'and keeps it')
})
