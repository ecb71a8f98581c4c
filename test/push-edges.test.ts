import t from 'tap'
import { ConfigError, describeConfig, loadConfig } from '../src/config.js'
import { sample, UPSTREAM_KEY } from './helpers/gateway.js'
import { openSse } from './helpers/sse-client.js'
import { pushGateway, taskWorld } from './helpers/task-world.js'
import { imageUrlExpiringAt, taskBody } from '../src/demo/simulated-upstream.js'
import { get, rawExchange, send, waitFor } from './helpers/net.js'
import { TaskCache } from '../src/cache/task-cache.js'
import { WatchHub } from '../src/push/watch-hub.js'
import { notifySecret } from '../src/push/notify-hook.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('docs/push.md §1: the push variables, checked at start-up', async (t) => {
  const base = { UPSTREAM_API_KEY: 'k' }
  const d = loadConfig(base)
  t.same(d.push, { maxSubscribers: 10000, watchIdleSeconds: 30, refreshIntervalMs: 1000 })
  t.equal(describeConfig(d)['REFRESH_INTERVAL_MS'], 1000)
  for (const [env, re] of [
    [{ REFRESH_INTERVAL_MS: '10' }, /^REFRESH_INTERVAL_MS: /],
    [{ EVENTS_MAX_SUBSCRIBERS: '0' }, /^EVENTS_MAX_SUBSCRIBERS: /],
    [{ WATCH_IDLE_SECONDS: '-1' }, /^WATCH_IDLE_SECONDS: /]
  ] as const) {
    t.throws(() => loadConfig({ ...base, ...env }), { message: re }, JSON.stringify(env))
    t.throws(() => loadConfig({ ...base, ...env }), ConfigError)
  }
})

t.test('docs/push.md §1: an upstream 4xx on the first state is passed through before the stream opens', async (t) => {
  const { gw, upstream: gwUp } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  taskWorld(gwUp)
  gwUp.enqueue({ kind: 'raw', body: '[]' }, { kind: 'json', status: 429, body: { error: 'slow down' }, headers: { 'retry-after': '7' } })
  const r = await get(`${gw.url}/mj/task/busy/events`)
  t.equal(r.status, 429)
  t.equal(r.headers['retry-after'], '7')
  t.same(r.json(), { error: 'slow down' })

  // a body for another task: not a stream
  gwUp.enqueue({ kind: 'raw', body: '[]' }, { kind: 'json', body: taskBody('someone-else', 'IN_PROGRESS') })
  const foreign = await get(`${gw.url}/mj/task/mine/events`)
  t.equal(foreign.status, 502)
  t.match(foreign.json(), { code: 'MJGW_UPSTREAM_BAD_RESPONSE' })
})

t.test('docs/push.md §1: subscribers arriving together share one first-state call; odd list answers', async (t) => {
  const { gw, world, upstream: gwUp } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('same', 'IN_PROGRESS')
  const [a, b] = await Promise.all([openSse(`${gw.url}/mj/task/same/events`), openSse(`${gw.url}/mj/task/same/events`)])
  await a?.waitForEvents(1)
  await b?.waitForEvents(1)
  t.same(world.listed[0], ['same'], 'one call for both')

  // a list naming tasks not asked for, twice: only the asked one counts
  const body = world.body('same') as string
  gwUp.setHandler((req) =>
    req.url === '/mj/task/list-by-condition'
      ? { kind: 'raw', body: `[${JSON.stringify(taskBody('stranger', 'SUCCESS'))},${body.replace('42%', '43%')},${body}]` }
      : { kind: 'raw', body }
  )
  await a?.waitForEvents(2)
  t.equal(JSON.parse(a?.events[1]?.data ?? '').progress, '43%', 'the first copy in the list wins')
  // a list route the relay does not have (404): counted as a failure, the stream stays
  gwUp.setHandler((req) => (req.url === '/mj/task/list-by-condition' ? { kind: 'json', status: 404, body: {} } : { kind: 'raw', body }))
  await sleep(300)
  t.notOk(a?.ended)
  a?.close()
  b?.close()
})

t.test('docs/push.md §4: a left-out task whose fetch fails or answers 4xx is not called gone', async (t) => {
  const { gw, world, upstream: gwUp } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100', UPSTREAM_RETRIES: '0', STALE_IF_ERROR_SECONDS: '0', POLL_CACHE_MS: '0' })
  world.set('odd', 'IN_PROGRESS')
  const s = await openSse(`${gw.url}/mj/task/odd/events`)
  await s.waitForEvents(1)
  let n = 0
  gwUp.setHandler((req) => {
    if (req.url === '/mj/task/list-by-condition') return { kind: 'raw', body: '[]' }
    return ++n % 2 === 0 ? { kind: 'json', status: 500, body: {} } : { kind: 'json', status: 400, body: {} }
  })
  await waitFor(() => n >= 4)
  t.notOk(s.ended)
  t.equal(s.events.length, 1)
  s.close()
})

t.test('docs/push.md §4: a terminal state whose imageUrl is about to expire is not cached', async (t) => {
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 })
  const hub = new WatchHub({ cache, rules: { ttlSeconds: 60, urlExpiryMarginSeconds: 300, pollCacheMs: 0 }, intervalMs: 1000, watchIdleMs: 30_000 })
  const now = Date.now()
  hub.fetched('x', now)
  hub.apply('x', Buffer.from(JSON.stringify(taskBody('x', 'IN_PROGRESS'))), now)
  t.ok(cache.fresh('x', now), 'a live state is cached')
  hub.apply('x', Buffer.from(JSON.stringify(taskBody('x', 'SUCCESS', { imageUrl: imageUrlExpiringAt(now / 1000 + 60) }))), now)
  t.equal(cache.fresh('x', now), undefined)
})

t.test('docs/push.md §5: a callback without any body or content-type is 404', async (t) => {
  const { gw } = await pushGateway(t, { PUBLIC_URL: 'https://gw.example' })
  const r = await send('POST', `${gw.url}/gateway/notify/${notifySecret(UPSTREAM_KEY)}`)
  t.equal(r.status, 404)
})

t.test('docs/push.md §1: the events routes answer GET only: a HEAD is 404, as for a route that does not exist, and asks nothing upstream', async (t) => {
  const { gw, world, upstream } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('h1', 'IN_PROGRESS')
  for (const path of ['/mj/task/h1/events', '/mj/tasks/events?ids=h1']) {
    const r = await send('HEAD', `${gw.url}${path}`)
    t.equal(r.status, 404, `HEAD ${path}`)
    t.not(r.headers['content-type'], 'text/event-stream', 'no stream opened')
  }
  t.equal(upstream.requests.length, 0, 'the upstream was not asked')
  const s = await openSse(`${gw.url}/mj/task/h1/events`)
  await s.waitForEvents(1)
  t.equal(s.headers['content-type'], 'text/event-stream', 'GET opens the stream')
  t.equal(s.headers['x-accel-buffering'], 'no')
  t.equal(s.headers['cache-control'], 'no-store', 'the gateway’s own cache-control, as on every answer')
  s.close()
})

t.test('docs/push.md §1: a client that leaves while its first state is read holds no stream and no place', async (t) => {
  const { gw, world, upstream } = await pushGateway(t, { REFRESH_INTERVAL_MS: '60000', POLL_CACHE_MS: '0', LOG_LEVEL: 'info' })
  const body = world.set('gone1', 'IN_PROGRESS')
  upstream.enqueue({ kind: 'raw', body: `[${body}]`, delayMs: 300 })
  const port = Number(new URL(gw.url).port)
  // sends the request, then closes the connection after 50 ms: long before the first state arrives
  await rawExchange(port, 'GET /mj/task/gone1/events HTTP/1.1\r\nhost: x\r\n\r\n', 50)
  // the first state is read all the same (the request had reached it), then the place is given back
  await waitFor(() => world.listCalls === 1)
  await waitFor(async () => sample(await gw.metrics(), 'mj_gateway_events_subscribers') === 0 && gw.logs().includes('"url":"/mj/task/gone1/events"'))
  t.pass('its place is given back, and the request has its access line')
  const s = await openSse(`${gw.url}/mj/task/gone1/events`)
  await s.waitForEvents(1)
  t.equal(sample(await gw.metrics(), 'mj_gateway_events_subscribers'), 1, 'only the one connected')
  s.close()
})
