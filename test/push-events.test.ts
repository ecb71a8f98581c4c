import t from 'tap'
import { sample, UPSTREAM_KEY } from './helpers/gateway.js'
import { openSse } from './helpers/sse-client.js'
import { pushGateway } from './helpers/task-world.js'
import { get, waitFor } from './helpers/net.js'

const FAST = { REFRESH_INTERVAL_MS: '100' }

t.test('docs/push.md §1: the first task event is the current state at once, then one event per change, the last state, end, close', async (t) => {
  const { gw, world, upstream: gwUp } = await pushGateway(t, FAST)
  const submitted = world.set('t1', 'SUBMITTED', { progress: '0%' })
  const s = await openSse(`${gw.url}/mj/task/t1/events`)
  t.equal(s.status, 200)
  t.match(s.headers['content-type'], /^text\/event-stream/)
  const [first] = await s.waitForEvents(1)
  t.equal(first?.event, 'task')
  t.equal(first?.data, submitted, 'data is the task JSON exactly as upstream sent it')
  t.equal(world.fetchCalls, 0)
  t.same(world.listed[0], ['t1'], 'the first state came from one upstream call')

  // a change of a field that is not status, progress or imageUrl is no event
  world.set('t1', 'SUBMITTED', { progress: '0%', description: 'queued' })
  await waitFor(() => world.listCalls >= 3)
  t.equal(s.events.length, 1, 'no event while status, progress and imageUrl stay')

  const running = world.set('t1', 'IN_PROGRESS', { progress: '10%' })
  await s.waitForEvents(2)
  t.equal(s.events[1]?.data, running)
  const further = world.set('t1', 'IN_PROGRESS', { progress: '55%' })
  await s.waitForEvents(3)
  t.equal(s.events[2]?.data, further, 'a progress change is an event')
  const done = world.set('t1', 'SUCCESS')
  await s.waitForEnd()
  t.same(
    s.events.map((e) => e.event),
    ['task', 'task', 'task', 'task', 'end'],
    'after the terminal state one last task event, then end, and the stream closes'
  )
  t.equal(s.events[3]?.data, done)
  const ids = s.events.slice(0, 4).map((e) => e.id)
  t.equal(new Set(ids).size, 4, 'every state has its own event id')

  // SUCCESS is cached: zero upstream calls after it
  const calls = gwUp.calls
  const again = await gw.fetchTask('t1')
  t.equal(again.body, done)
  t.equal(again.headers['x-cache'], 'HIT')
  await new Promise((r) => setTimeout(r, 300))
  t.equal(gwUp.calls, calls, 'no upstream call after the terminal state')
})

t.test('docs/push.md §1: an id upstream does not know is 404 before the stream opens; bad ids are 400', async (t) => {
  const { gw, world, upstream: gwUp } = await pushGateway(t, FAST)
  world.set('known', 'IN_PROGRESS')
  const unknown = await openSse(`${gw.url}/mj/task/nope/events`)
  await unknown.waitForEnd()
  t.equal(unknown.status, 404)
  t.match(unknown.headers['content-type'], /application\/json/)
  t.match(JSON.parse(unknown.body), { statusCode: 404, code: 'MJGW_TASK_NOT_FOUND' })

  const calls = gwUp.calls
  const bad = await get(`${gw.url}/mj/task/bad%20id/events`)
  t.equal(bad.status, 400)
  const multiUnknown = await get(`${gw.url}/mj/tasks/events?ids=known,nope`)
  t.equal(multiUnknown.status, 404, 'one unknown id among many: 404 before the stream')
  for (const q of ['', 'ids=', 'ids=a,a', 'ids=a,,b', 'ids=a,b%20c', `ids=${Array.from({ length: 101 }, (_, i) => `x${i}`).join(',')}`]) {
    const r = await get(`${gw.url}/mj/tasks/events?${q}`)
    t.equal(r.status, 400, `?${q.slice(0, 30)} is 400`)
    t.match(r.json(), { statusCode: 400, code: /^MJGW_BAD_(REQUEST|TASK_ID)$/ })
  }
  t.equal(gwUp.calls, calls + 2, 'only the request with valid ids reached the upstream (a list, then a fetch for the id it left out)')
})

t.test('docs/push.md §1: a task that becomes unknown upstream gets an error event and the stream closes', async (t) => {
  const { gw, world } = await pushGateway(t, FAST)
  world.set('vanish', 'IN_PROGRESS')
  const s = await openSse(`${gw.url}/mj/task/vanish/events`)
  await s.waitForEvents(1)
  world.remove('vanish')
  await s.waitForEnd()
  t.same(
    s.events.map((e) => e.event),
    ['task', 'error']
  )
  t.match(JSON.parse(s.events[1]?.data ?? ''), { statusCode: 404, code: 'MJGW_TASK_NOT_FOUND', id: 'vanish' })
})

t.test('docs/push.md §1: many tasks on one connection; it ends when all are terminal', async (t) => {
  const { gw, world } = await pushGateway(t, FAST)
  world.set('a', 'IN_PROGRESS')
  world.set('b', 'SUCCESS')
  world.set('c', 'SUBMITTED')
  const s = await openSse(`${gw.url}/mj/tasks/events?ids=a,b,c`)
  await s.waitForEvents(3)
  t.same(
    s.events.map((e) => JSON.parse(e.data).id),
    ['a', 'b', 'c'],
    'the current state of each, in the order asked'
  )
  world.set('a', 'FAILURE')
  await s.waitForEvents(4)
  t.notOk(s.ended, 'open while one task is live')
  world.remove('c')
  await s.waitForEnd()
  t.same(
    s.events.map((e) => e.event),
    ['task', 'task', 'task', 'task', 'error', 'end'],
    'a vanished task is an error event for it; then end once none is live'
  )
})

t.test('docs/push.md §2: Last-Event-ID resumes without repeating', async (t) => {
  const { gw, world } = await pushGateway(t, FAST)
  world.set('a', 'IN_PROGRESS', { progress: '10%' })
  world.set('b', 'IN_PROGRESS', { progress: '20%' })
  const s = await openSse(`${gw.url}/mj/tasks/events?ids=a,b`)
  const seen = await s.waitForEvents(2)
  const last = seen[1]?.id as string
  s.close()

  const resumed = await openSse(`${gw.url}/mj/tasks/events?ids=a,b`, { 'last-event-id': last })
  await new Promise((r) => setTimeout(r, 300))
  t.equal(resumed.events.length, 0, 'nothing seen is sent again')
  world.set('b', 'IN_PROGRESS', { progress: '30%' })
  const after = await resumed.waitForEvents(1)
  t.equal(JSON.parse(after[0]?.data ?? '').progress, '30%', 'only the change since')
  resumed.close()

  // an id from before a change: the current state is sent
  const older = await openSse(`${gw.url}/mj/tasks/events?ids=a,b`, { 'last-event-id': last })
  const got = await older.waitForEvents(1)
  t.equal(JSON.parse(got[0]?.data ?? '').id, 'b')
  older.close()

  // a task seen terminal: only end
  world.set('one', 'SUCCESS')
  const done = await openSse(`${gw.url}/mj/task/one/events`)
  await done.waitForEnd()
  const again = await openSse(`${gw.url}/mj/task/one/events`, { 'last-event-id': done.events[0]?.id as string })
  await again.waitForEnd()
  t.same(
    again.events.map((e) => e.event),
    ['end']
  )
  const garbage = await openSse(`${gw.url}/mj/task/one/events`, { 'last-event-id': 'x.y.z' })
  await garbage.waitForEnd()
  t.same(
    garbage.events.map((e) => e.event),
    ['task', 'end'],
    'an id that does not fit is ignored'
  )
})

t.test('docs/push.md §1: a comment line keeps an idle stream open', async (t) => {
  const { gw, world } = await pushGateway(t, FAST, { overrides: { heartbeatMs: 50 } })
  world.set('idle', 'SUBMITTED')
  const s = await openSse(`${gw.url}/mj/task/idle/events`)
  await waitFor(() => s.comments.length >= 2)
  t.equal(s.events.length, 1)
  s.close()
})

t.test('docs/push.md §9: the subscriber gauge and the refresh counter', async (t) => {
  const { gw, world } = await pushGateway(t, FAST)
  world.set('m', 'IN_PROGRESS')
  const before = await gw.metrics()
  t.equal(sample(before, 'mj_gateway_events_subscribers'), 0)
  t.equal(sample(before, 'mj_gateway_refresh_calls_total', { outcome: 'ok' }), 0)
  t.equal(sample(before, 'mj_gateway_refresh_calls_total', { outcome: 'error' }), 0)
  t.equal(sample(before, 'mj_gateway_notify_callbacks_total', { outcome: 'accepted' }), 0)
  const s = await openSse(`${gw.url}/mj/task/m/events`)
  await s.waitForEvents(1)
  await waitFor(() => world.listCalls >= 3)
  const during = await gw.metrics()
  t.equal(sample(during, 'mj_gateway_events_subscribers'), 1)
  t.ok((sample(during, 'mj_gateway_refresh_calls_total', { outcome: 'ok' }) ?? 0) >= 2)
  s.close()
  await waitFor(async () => sample(await gw.metrics(), 'mj_gateway_events_subscribers') === 0)
  t.notOk(gw.logs().includes(UPSTREAM_KEY))
})

t.test('docs/push.md §1: a task already being loaded or watched costs a later subscriber no upstream call', async (t) => {
  // no refresher round during the test: every list call is a first state
  const { gw, world, upstream } = await pushGateway(t, { REFRESH_INTERVAL_MS: '60000', POLL_CACHE_MS: '0' })
  const body = world.set('f1', 'IN_PROGRESS', { progress: '5%' })
  upstream.enqueue({ kind: 'raw', body: `[${body}]`, delayMs: 300 })
  const a = openSse(`${gw.url}/mj/task/f1/events`)
  // past the gathering window, while the first list call is still out
  await new Promise((r) => setTimeout(r, 100))
  const b = openSse(`${gw.url}/mj/task/f1/events`)
  const [sa, sb] = await Promise.all([a, b])
  await sa.waitForEvents(1)
  await sb.waitForEvents(1)
  t.equal(sb.events[0]?.data, body)
  t.equal(world.listCalls, 1, 'the second subscriber joined the load in flight')
  // now the hub watches it: a third subscriber takes its state from there
  const sc = await openSse(`${gw.url}/mj/task/f1/events`)
  await sc.waitForEvents(1)
  t.equal(sc.events[0]?.data, body)
  t.equal(world.listCalls, 1, 'a watched task’s state comes from the hub')
  t.equal(world.fetchCalls, 0)
  for (const s of [sa, sb, sc]) s.close()
})
