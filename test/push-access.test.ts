import { connect } from 'node:net'
import t from 'tap'
import fc from 'fast-check'
import { sample } from './helpers/gateway.js'
import { openSse } from './helpers/sse-client.js'
import { pushGateway } from './helpers/task-world.js'
import { get, rawExchange, rawStatus, waitFor } from './helpers/net.js'
import { loggableUrl } from '../src/logging/access-log.js'
import { MAX_SUBSCRIBERS_PER_CLIENT } from '../src/push/subscribers.js'

const TOKEN = 'client-TOKEN-secret-71c9'
const OTHER = 'other-TOKEN-secret-0b2e'
const ENV = { REFRESH_INTERVAL_MS: '100', CLIENT_KEYS: `web:${TOKEN},ops:${OTHER}`, LOG_LEVEL: 'info' }

t.test('docs/push.md §3: the token in Authorization, mj-api-secret or ?token= (events routes only), never logged', async (t) => {
  const { gw, world } = await pushGateway(t, ENV)
  world.set('t1', 'IN_PROGRESS')
  const none = await get(`${gw.url}/mj/task/t1/events`)
  t.equal(none.status, 401)
  t.match(none.json(), { code: 'MJGW_UNAUTHORIZED' })
  const wrong = await get(`${gw.url}/mj/task/t1/events?token=nope-${TOKEN}`)
  t.equal(wrong.status, 401)

  for (const [how, url, headers] of [
    ['Authorization', `${gw.url}/mj/task/t1/events`, { authorization: `Bearer ${TOKEN}` }],
    ['mj-api-secret', `${gw.url}/mj/task/t1/events`, { 'mj-api-secret': TOKEN }],
    ['query', `${gw.url}/mj/task/t1/events?token=${TOKEN}`, {}],
    ['query, many tasks', `${gw.url}/mj/tasks/events?token=${TOKEN}&ids=t1`, {}]
  ] as const) {
    const s = await openSse(url, headers)
    t.equal(s.status, 200, how)
    await s.waitForEvents(1)
    s.close()
  }
  const fetchWithQuery = await get(`${gw.url}/mj/task/t1/fetch?token=${TOKEN}`)
  t.equal(fetchWithQuery.status, 401, 'a query token is not taken on /fetch')
  // however the name is escaped, or wherever the router starts the query, what is taken as a token is not logged
  const escapedName = await openSse(`${gw.url}/mj/task/t1/events?%74oken=${TOKEN}`)
  t.equal(escapedName.status, 200, 'an escaped name')
  await escapedName.waitForEvents(1)
  escapedName.close()
  // (an HTTP client keeps a fragment to itself: written on the socket by hand; the stream is cut after 500 ms)
  const fragment = await rawExchange(Number(new URL(gw.url).port), `GET /mj/task/t1/events#&token=${TOKEN} HTTP/1.1\r\nHost: gw\r\n\r\n`, 500)
  t.equal(rawStatus(fragment), 200, 'a query the router starts at #')

  await waitFor(() => gw.logs().includes('?token=[redacted]&ids=t1') && gw.logs().includes('events#&token=[redacted]') && gw.logs().includes('?%74oken=[redacted]'))
  const logs = gw.logs()
  t.notOk(logs.includes(TOKEN), 'the token appears in no log line')
  t.match(logs, /"url":"\/mj\/task\/t1\/events\?token=\[redacted\]".*"client":"web"/)
})

t.test('loggableUrl: escaped names, names without a value, broken escapes, the callback path', async (t) => {
  t.equal(loggableUrl('/mj/task/x/events?%74oken=abc&%54OKEN=def&s%69g=ghi'), '/mj/task/x/events?%74oken=[redacted]&%54OKEN=[redacted]&s%69g=[redacted]')
  t.equal(loggableUrl('/mj/task/x/events?token&ids=a'), '/mj/task/x/events?[redacted]&ids=a')
  t.equal(loggableUrl('/mj/task/x/events?%zz=1&token=abc'), '/mj/task/x/events?%zz=1&token=[redacted]')
  t.equal(loggableUrl('/mj/task/x/events#&token=abc'), '/mj/task/x/events#&token=[redacted]', 'a query the router starts at #')
  t.equal(loggableUrl('/mj/task/x/fetch'), '/mj/task/x/fetch')
})

t.test('loggableUrl never lets a token query value through', async (t) => {
  fc.assert(
    fc.property(fc.string({ minLength: 1 }), fc.string(), fc.constantFrom('token', 'TOKEN', 'Token'), (token, other, name) => {
      const encoded = encodeURIComponent(token)
      const url = `/mj/task/x/events?a=${encodeURIComponent(other)}&${name}=${encoded}&b=1`
      const out = loggableUrl(url) ?? ''
      return out.includes(`${name}=[redacted]&b=1`) && (encoded.length < 3 || !out.slice(out.indexOf(name)).includes(encoded))
    })
  )
  t.equal(loggableUrl('/mj/task/x/events'), '/mj/task/x/events')
})

t.test('docs/push.md §1: CORS on the events routes as on /fetch', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100', CORS_ORIGINS: 'https://app.example' })
  world.set('c1', 'IN_PROGRESS')
  const s = await openSse(`${gw.url}/mj/task/c1/events`, { origin: 'https://app.example' })
  t.equal(s.headers['access-control-allow-origin'], 'https://app.example')
  s.close()
  const other = await openSse(`${gw.url}/mj/task/c1/events`, { origin: 'https://evil.example' })
  t.equal(other.headers['access-control-allow-origin'], undefined)
  other.close()
  const error = await get(`${gw.url}/mj/task/unknown/events`, { origin: 'https://app.example' })
  t.equal(error.status, 404)
  t.equal(error.headers['access-control-allow-origin'], 'https://app.example', 'errors before the stream too')
})

t.test('docs/push.md §1: EVENTS_MAX_SUBSCRIBERS in all, 100 per client, beyond them 429', async (t) => {
  const { gw, world } = await pushGateway(t, { ...ENV, EVENTS_MAX_SUBSCRIBERS: String(MAX_SUBSCRIBERS_PER_CLIENT + 2), RATE_LIMIT_PER_MINUTE: '0' })
  world.set('l', 'IN_PROGRESS')
  const mine = []
  for (let i = 0; i < MAX_SUBSCRIBERS_PER_CLIENT; i++) mine.push(await openSse(`${gw.url}/mj/task/l/events?token=${TOKEN}`))
  t.ok(mine.every((s) => s.status === 200))
  const over = await get(`${gw.url}/mj/task/l/events?token=${TOKEN}`)
  t.equal(over.status, 429)
  t.match(over.json(), { statusCode: 429, code: 'MJGW_RATE_LIMITED' })
  t.ok(Number(over.headers['retry-after']) > 0)

  const theirs = [await openSse(`${gw.url}/mj/task/l/events?token=${OTHER}`), await openSse(`${gw.url}/mj/task/l/events?token=${OTHER}`)]
  t.same(
    theirs.map((s) => s.status),
    [200, 200],
    'another client is not held back by the first'
  )
  const total = await get(`${gw.url}/mj/task/l/events?token=${OTHER}`)
  t.equal(total.status, 429, 'EVENTS_MAX_SUBSCRIBERS counts every client')

  mine[0]?.close()
  await waitFor(async () => (await openSse(`${gw.url}/mj/task/l/events?token=${OTHER}`)).status === 200)
  t.equal(world.fetchCalls, 0, 'their first states came by list, not one fetch each')
  for (const s of [...mine, ...theirs]) s.close()
})

t.test('docs/push.md §7: a client that stops reading is dropped, not buffered without bound', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  const padding = 'x'.repeat(256 * 1024)
  world.set('big', 'IN_PROGRESS', { progress: '0%', padding })
  // a raw socket that sends the request and never reads
  const socket = connect(gw.port, '127.0.0.1')
  socket.write('GET /mj/task/big/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n')
  socket.pause()
  socket.on('error', () => undefined)
  t.teardown(() => socket.destroy())
  await waitFor(async () => sample(await gw.metrics(), 'mj_gateway_events_subscribers') === 1)
  let n = 0
  const timer = setInterval(() => world.set('big', 'IN_PROGRESS', { progress: `${++n}%`, padding }), 50)
  t.teardown(() => clearInterval(timer))
  await waitFor(async () => sample(await gw.metrics(), 'mj_gateway_events_subscribers') === 0, 30_000)
  clearInterval(timer)
  t.pass(`dropped after ${n} changes it did not read`)
  const ok = await openSse(`${gw.url}/mj/task/big/events`)
  await ok.waitForEvents(1)
  t.equal(ok.status, 200, 'others are served as before')
  ok.close()
})

t.test('docs/push.md §8: shutting down ends open streams', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('s', 'IN_PROGRESS')
  const s = await openSse(`${gw.url}/mj/task/s/events`)
  await s.waitForEvents(1)
  const started = Date.now()
  await gw.app.close()
  await s.waitForEnd()
  t.ok(Date.now() - started < 5000, 'close does not wait for the subscriber')
})

t.test('docs/push.md §8: a stream whose first state arrives while the gateway shuts down ends at once', async (t) => {
  const { gw, world, upstream } = await pushGateway(t, { REFRESH_INTERVAL_MS: '60000', POLL_CACHE_MS: '0' })
  const body = world.set('late', 'IN_PROGRESS')
  upstream.enqueue({ kind: 'raw', body: `[${body}]`, delayMs: 500 })
  const opening = openSse(`${gw.url}/mj/task/late/events`)
  // the request has reached its first state, which the upstream holds for 500 ms
  await waitFor(() => world.listCalls === 1)
  const started = Date.now()
  const closing = gw.app.close()
  const s = await opening
  await s.waitForEnd()
  await closing
  t.ok(Date.now() - started < 5000, `the stream ended and the gateway closed in ${Date.now() - started} ms`)
  t.same(
    s.events.map((e) => e.event),
    ['task'],
    'its first state, then the end of the connection: the EventSource reconnects elsewhere'
  )
})
