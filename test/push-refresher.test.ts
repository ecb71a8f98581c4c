import t from 'tap'
import { sample } from './helpers/gateway.js'
import { openSse } from './helpers/sse-client.js'
import { pushGateway } from './helpers/task-world.js'
import { waitFor } from './helpers/net.js'
import { TaskCache } from '../src/cache/task-cache.js'
import { refreshPeriods, WatchHub } from '../src/push/watch-hub.js'
import { taskState } from '../src/push/task-state.js'
import { taskBody } from '../src/demo/simulated-upstream.js'
import { pino } from 'pino'
import { Refresher } from '../src/push/refresher.js'
import type { UpstreamClient } from '../src/upstream/client.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('docs/push.md §4: one list-by-condition call per interval for all watched tasks, at most 100 ids a call', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '200' })
  const ids = Array.from({ length: 150 }, (_, i) => `w${i}`)
  for (const id of ids) world.set(id, 'IN_PROGRESS', { progress: '1%' })
  const streams = [await openSse(`${gw.url}/mj/tasks/events?ids=${ids.slice(0, 100).join(',')}`), await openSse(`${gw.url}/mj/tasks/events?ids=${ids.slice(100).join(',')}`)]
  // 20 more subscribers on the same tasks cost nothing more upstream
  for (let i = 0; i < 20; i++) streams.push(await openSse(`${gw.url}/mj/task/w${i}/events`))
  await Promise.all(streams.map((s, i) => s.waitForEvents(i === 0 ? 100 : i === 1 ? 50 : 1)))
  t.equal(world.fetchCalls, 0, 'the first states came by list')
  t.ok(world.listed.slice(0, 2).every((asked) => asked.length <= 100))
  const start = world.listCalls
  const began = Date.now()
  await sleep(1500)
  const rounds = (Date.now() - began) / 200
  const calls = world.listCalls - start
  t.ok(calls <= 2 * (rounds + 1), `${calls} list calls in ${rounds.toFixed(1)} intervals for 150 tasks (two a round)`)
  t.ok(calls >= 2, 'the refresher runs')
  t.ok(world.listed.every((asked) => asked.length <= 100 && new Set(asked).size === asked.length))
  t.same(new Set(world.listed.slice(-4).flat()), new Set(ids), 'every watched task is asked')
  t.equal(world.fetchCalls, 0, 'no per-task fetch while the list answers')

  world.set('w7', 'IN_PROGRESS', { progress: '50%' })
  await streams[0]?.waitForEvents(101)
  t.equal(JSON.parse(streams[0]?.events[100]?.data ?? '').id, 'w7')
  for (const s of streams) s.close()
})

t.test('docs/push.md §4: a /fetch makes a live task watched for WATCH_IDLE_SECONDS; /fetch then answers from the refresh', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100', WATCH_IDLE_SECONDS: '1' })
  world.set('f', 'IN_PROGRESS', { progress: '5%' })
  const first = await gw.fetchTask('f')
  t.equal(first.headers['x-cache'], 'MISS')
  await waitFor(() => world.listCalls >= 1)
  const changed = world.set('f', 'IN_PROGRESS', { progress: '60%' })
  await waitFor(() => world.listCalls >= 3)
  const second = await gw.fetchTask('f')
  t.equal(second.body, changed, 'the refreshed state')
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(world.fetchCalls, 1, 'no further upstream fetch for it')

  // a hit also keeps it watched; once nobody asks for WATCH_IDLE_SECONDS, the refresher stops asking
  // (the watch runs out after 1 s; on a busy machine its last round may land a little later: wait for quiet)
  await sleep(1000)
  for (let quiet = 0, last = world.listCalls, i = 0; quiet < 3 && i < 50; i++) {
    await sleep(100)
    quiet = world.listCalls === last ? quiet + 1 : 0
    last = world.listCalls
  }
  const calls = world.listCalls
  await sleep(500)
  t.equal(world.listCalls, calls, 'idle: not refreshed any more')

  // WATCH_IDLE_SECONDS=0: a /fetch watches nothing
  const { gw: off, world: offWorld } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100', WATCH_IDLE_SECONDS: '0' })
  offWorld.set('g', 'IN_PROGRESS')
  await off.fetchTask('g')
  await sleep(400)
  t.equal(offWorld.listCalls, 0)
})

t.test('docs/push.md §4: upstream failures back the refresher off and never end a stream', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100', UPSTREAM_RETRIES: '0' })
  world.set('b', 'IN_PROGRESS', { progress: '1%' })
  const s = await openSse(`${gw.url}/mj/task/b/events`)
  await s.waitForEvents(1)
  world.failLists(4)
  const before = world.listCalls
  await sleep(1500)
  const failed = world.listCalls - before
  t.ok(failed <= 5, `${failed} calls in 15 intervals while failing: backed off`)
  t.notOk(s.ended, 'the stream stays open')
  t.ok((sample(await gw.metrics(), 'mj_gateway_refresh_calls_total', { outcome: 'error' }) ?? 0) >= 2)
  world.set('b', 'SUCCESS')
  await s.waitForEnd(20_000)
  t.same(
    s.events.map((e) => e.event),
    ['task', 'task', 'end'],
    'changes flow again once the upstream is back'
  )
})

t.test('docs/push.md §4: a list that leaves a task out is checked with one fetch before the task is called gone', async (t) => {
  const { gw, world, upstream: gwUp } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('hidden', 'IN_PROGRESS', { progress: '1%' })
  const listed = world.body('hidden') as string
  const s = await openSse(`${gw.url}/mj/task/hidden/events`)
  await s.waitForEvents(1)
  // this relay's list knows nothing, its fetch does
  gwUp.setHandler((req) => {
    if (req.url === '/mj/task/list-by-condition') return { kind: 'raw', body: '[]' }
    return { kind: 'raw', body: listed.replace('1%', '70%') }
  })
  await s.waitForEvents(2)
  t.equal(JSON.parse(s.events[1]?.data ?? '').progress, '70%')
  t.notOk(s.ended)
  for (const odd of ['', 'null', 'not json', '{"an":"object"}', '[null,1,{"id":7}]']) {
    gwUp.setHandler((req) => (req.url === '/mj/task/list-by-condition' ? { kind: 'raw', body: odd } : { kind: 'raw', body: listed.replace('1%', '70%') }))
    await sleep(250)
  }
  t.notOk(s.ended, 'odd list answers end no stream')
  s.close()
})

t.test('adaptive refresh: a task unchanged for 10 s is asked every second interval, for 30 s every fourth', async (t) => {
  t.equal(refreshPeriods(0), 1)
  t.equal(refreshPeriods(9_999), 1)
  t.equal(refreshPeriods(10_000), 2)
  t.equal(refreshPeriods(29_999), 2)
  t.equal(refreshPeriods(30_000), 4)
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 })
  const hub = new WatchHub({ cache, rules: { ttlSeconds: 60, urlExpiryMarginSeconds: 0, pollCacheMs: 0 }, intervalMs: 1000, watchIdleMs: 30_000 })
  const body = Buffer.from(JSON.stringify(taskBody('q', 'SUBMITTED')))
  hub.fetched('q', 0)
  t.same(hub.due(0), ['q'])
  hub.apply('q', body, 0)
  t.same(hub.due(1000), ['q'], 'changed just now: next interval')
  hub.apply('q', body, 12_000)
  t.same(hub.due(13_000), [], 'unchanged for 12 s: not the next interval')
  t.same(hub.due(14_000), ['q'], '…the one after')
  hub.fetched('q', 29_000)
  hub.apply('q', body, 45_000)
  t.same(hub.due(47_000), [], 'unchanged for 45 s: every fourth interval')
  t.same(hub.due(49_000), ['q'])
  t.same(hub.due(60_000), [], 'unwatched after WATCH_IDLE_SECONDS: forgotten')
  t.equal(hub.apply('other', body, 0), false, 'a body for an unwatched task changes nothing')
  t.equal(hub.apply('q', Buffer.from('[]'), 0), false, 'nor does a body that is no task')
  t.equal(taskState(Buffer.from('{"id":1}')), undefined)
  t.equal(taskState(Buffer.from('nope')), undefined)
})

t.test('docs/push.md §6: a replica that does not refresh still forgets the tasks nobody watches any more', async (t) => {
  const hub = new WatchHub({ cache: new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 }), rules: { ttlSeconds: 60, urlExpiryMarginSeconds: 0, pollCacheMs: 0 }, intervalMs: 100, watchIdleMs: 500 })
  let asked = 0
  const upstream = { request: () => { asked++; throw new Error('a replica that does not lead asks nothing') } } as unknown as UpstreamClient
  const refresher = new Refresher({ hub, upstream, intervalMs: 100, log: pino({ level: 'silent' }), count: () => undefined, confirm: async () => undefined, leader: async () => false })
  const now = Date.now()
  hub.fetched('f1', now)
  hub.fetched('f2', now)
  t.equal(hub.size, 2)
  await refresher.tick()
  t.equal(hub.size, 2, 'still watched')
  await sleep(600)
  await refresher.tick()
  t.equal(hub.size, 0, 'their watch ran out: forgotten')
  t.equal(asked, 0)
})
