/**
 * The hit lane (src/http/hit-lane.ts): a fresh cached task answered ahead of Fastify, with exactly what the Fastify
 * route would send, and every other request left to Fastify. A query string takes a request past the lane
 * (`?via=router`), so each answer of the lane is compared with the route's answer to the same request.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { taskBody } from '../src/demo/simulated-upstream.js'
import { send, type HttpResult } from './helpers/net.js'
import { sample, startGateway as startAnyGateway, type Gateway } from './helpers/gateway.js'
import { HitLane } from '../src/http/hit-lane.js'
import { CorsPolicy } from '../src/http/cors-policy.js'
import { TaskCache } from '../src/cache/task-cache.js'
import { GatewayMetrics } from '../src/metrics/gateway-metrics.js'
import { ClientKeyTable } from '../src/clients/client-keys.js'
import { RateLimitCounter, type Store } from '../src/rate-limit/counter.js'
import { Ownership } from '../src/clients/ownership.js'
import { ClientInflight } from '../src/clients/client-inflight.js'

const TOKEN = 'lane-client-SECRET-31'

/** These tests are about the lane itself: it is on, whatever HIT_LANE the suite runs with; no load shedding (a lagging
 * test machine would send requests past the lane to the shedding check, which has its own tests). */
const startGateway = (t: Test, env: Record<string, string> = {}): Promise<Gateway> => startAnyGateway(t, { EVENT_LOOP_MAX_DELAY_MS: '0', ...env, HIT_LANE: 'on' })
const laneOf = (gw: Gateway): HitLane => gw.app.hitLane as HitLane
const ORIGIN = 'https://app.example'

/** headers whose values may differ between two answers a moment apart */
const MOVING = new Set(['date', 'x-ratelimit-remaining', 'cache-control'])

async function cached(gw: Gateway, id: string, status = 'SUCCESS', headers: Record<string, string> = {}): Promise<void> {
  gw.upstream.enqueue({ kind: 'json', body: taskBody(id, status) })
  const first = await gw.fetchTask(id, headers)
  if (first.headers['x-cache'] !== 'MISS') throw new Error(`expected a MISS, got ${first.status} ${first.headers['x-cache']}`)
}

/** the same request answered by the lane and by the route */
async function both(t: Test, gw: Gateway, id: string, headers: Record<string, string> = {}): Promise<[HttpResult, HttpResult]> {
  const before = laneOf(gw).answered
  const lane = await send('GET', `${gw.url}/mj/task/${id}/fetch`, { headers })
  t.equal(laneOf(gw).answered, before + 1, 'the lane answered the canonical URL')
  const route = await send('GET', `${gw.url}/mj/task/${id}/fetch?via=router`, { headers })
  t.equal(laneOf(gw).answered, before + 1, 'the route answered the URL with a query')
  return [lane, route]
}

function sameAnswer(t: Test, lane: HttpResult, route: HttpResult, what: string): void {
  t.equal(lane.status, route.status, `${what}: status`)
  t.same(Object.keys(lane.headers), Object.keys(route.headers), `${what}: the same header names, in the same order`)
  for (const [k, v] of Object.entries(route.headers)) if (!MOVING.has(k)) t.equal(lane.headers[k], v, `${what}: ${k}`)
  t.equal(lane.body, route.body, `${what}: body`)
}

t.test('the lane sends what the route sends: a terminal and a live task, 200 and 304, default configuration', async (t) => {
  const gw = await startGateway(t, { POLL_CACHE_MS: '60000' })
  await cached(gw, 'L-DONE')
  await cached(gw, 'L-LIVE', 'IN_PROGRESS')
  for (const id of ['L-DONE', 'L-LIVE']) {
    const [lane, route] = await both(t, gw, id)
    sameAnswer(t, lane, route, id)
    t.equal(lane.headers['x-cache'], 'HIT')
    t.equal(lane.headers['x-ratelimit-limit'], '600')
    t.equal(Number(lane.headers['x-ratelimit-remaining']), Number(route.headers['x-ratelimit-remaining']) + 1, 'one store counts both')
    const [lane304, route304] = await both(t, gw, id, { 'if-none-match': lane.headers['etag'] as string })
    sameAnswer(t, lane304, route304, `${id} 304`)
    t.equal(lane304.status, 304)
    t.equal(lane304.body, '')
  }
  t.equal(gw.upstream.calls, 2, 'only the two misses reached upstream')
  t.equal((await both(t, gw, 'L-DONE'))[0].headers['cache-control']?.startsWith('private, max-age='), true)
  t.equal((await both(t, gw, 'L-LIVE'))[0].headers['cache-control'], 'no-cache')
})

t.test('the lane with client tokens and CORS: an allowed origin, another origin, and none', async (t) => {
  const gw = await startGateway(t, { CLIENT_KEYS: `web:${TOKEN}`, CORS_ORIGINS: ORIGIN, LOG_LEVEL: 'info' })
  const auth = { authorization: `Bearer ${TOKEN}` }
  await cached(gw, 'C1', 'SUCCESS', auth)
  const origins: Array<Record<string, string>> = [{ origin: ORIGIN }, { origin: 'https://evil.example' }, {}]
  for (const extra of origins) {
    const [lane, route] = await both(t, gw, 'C1', { ...auth, ...extra })
    sameAnswer(t, lane, route, `origin ${extra.origin ?? 'none'}`)
    t.equal(lane.headers['access-control-allow-origin'], extra.origin === ORIGIN ? ORIGIN : undefined)
  }
  const secret = await send('GET', `${gw.url}/mj/task/C1/fetch`, { headers: { 'mj-api-secret': TOKEN } })
  t.equal(secret.headers['x-cache'], 'HIT', 'mj-api-secret works in the lane too')
  // docs/access-control.md §8: no log line ever holds a client token; access lines name the client instead
  t.notMatch(gw.logs(), TOKEN)
  t.match(gw.logs(), /"res":\{"statusCode":200,"client":"web"\}/)
})

t.test('the lane without a rate limit sends no x-ratelimit-* headers, like the route', async (t) => {
  const gw = await startGateway(t, { RATE_LIMIT_PER_MINUTE: '0' })
  await cached(gw, 'N1')
  const [lane, route] = await both(t, gw, 'N1')
  sameAnswer(t, lane, route, 'no limit')
  t.equal(lane.headers['x-ratelimit-limit'], undefined)
})

t.test('requests the lane leaves to Fastify are answered as before', async (t) => {
  const gw = await startGateway(t, { CLIENT_KEYS: `web:${TOKEN}`, RATE_LIMIT_PER_MINUTE: '8' })
  const auth = { authorization: `Bearer ${TOKEN}` }
  await cached(gw, 'F1', 'SUCCESS', auth)
  const answered = laneOf(gw).answered

  const noToken = await gw.fetchTask('F1')
  t.equal(noToken.status, 401, 'no token: 401 from the auth check')
  t.equal(noToken.headers['x-ratelimit-remaining'], '7', 'counted against the IP')
  const badToken = await gw.fetchTask('F1', { authorization: 'Bearer nope' })
  t.equal(badToken.status, 401)

  const head = await send('HEAD', `${gw.url}/mj/task/F1/fetch`, { headers: auth })
  t.equal(head.status, 200, 'HEAD: the route')
  t.equal(head.headers['x-cache'], 'HIT')
  const withBody = await send('GET', `${gw.url}/mj/task/F1/fetch`, { headers: { ...auth, 'content-type': 'application/json' }, body: '{}' })
  t.equal(withBody.status, 400, 'a body on GET: refused by the hardening')
  const flood: Record<string, string> = { ...auth }
  for (let i = 0; i < 120; i++) flood[`x-h${i}`] = 'v'
  t.equal((await send('GET', `${gw.url}/mj/task/F1/fetch`, { headers: flood })).status, 431, 'a header flood: 431')
  t.equal((await send('GET', `${gw.url}/mj/task/F1/fetch/`, { headers: auth })).status, 404, 'a trailing slash: the router says 404')
  t.equal(laneOf(gw).answered, answered, 'none of these went through the lane')

  // the client's own limit: 8 a minute, three already used (the MISS, the HEAD and the unknown path, counted like
  // any /mj path; the refused body and flood never reached the limiter)
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await gw.fetchTask('F1', auth)).status)
  t.same(statuses, [200, 200, 200, 200, 200, 429], 'the ninth request of the client is over its limit')
  const over = await gw.fetchTask('F1', auth)
  t.equal(over.status, 429)
  t.match(over.json(), { code: 'MJGW_RATE_LIMITED' })
  t.ok(Number(over.headers['retry-after']) > 0, 'retry-after')
  t.equal(laneOf(gw).answered, answered + 5, 'the lane answered the five within the limit, the route the rest')
})

t.test('TRUST_PROXY: the lane counts an anonymous client under its forwarded address and logs it as the route does', async (t) => {
  const gw = await startGateway(t, { TRUST_PROXY: '127.0.0.1', RATE_LIMIT_PER_MINUTE: '5', LOG_LEVEL: 'info' })
  await cached(gw, 'P1', 'SUCCESS', { 'x-forwarded-for': '203.0.113.1' })
  const a = await gw.fetchTask('P1', { 'x-forwarded-for': '203.0.113.1', 'x-forwarded-host': 'gw.example' })
  const b = await gw.fetchTask('P1', { 'x-forwarded-for': '203.0.113.2' })
  t.equal(a.headers['x-ratelimit-remaining'], '3', 'the second request of 203.0.113.1')
  t.equal(b.headers['x-ratelimit-remaining'], '4', 'the first of 203.0.113.2')
  const lines = gw
    .logs()
    .split('\n')
    .filter((l) => l.includes('request completed'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  t.equal(lines.length, 3)
  t.match(lines[1], { reqId: /^req-/, req: { method: 'GET', url: '/mj/task/P1/fetch', host: 'gw.example', remoteAddress: '203.0.113.1' }, res: { statusCode: 200 } })
  t.same(Object.keys(lines[1] as object), Object.keys(lines[0] as object), 'the lane and the route write the same fields')
  t.same(Object.keys((lines[1] as { req: object }).req), Object.keys((lines[0] as { req: object }).req))
  t.not(lines[0]?.['reqId'], lines[1]?.['reqId'], 'one sequence of request ids')
})

t.test('lane answers are counted: cache lookups and http metrics under the route pattern', async (t) => {
  const gw = await startGateway(t)
  await cached(gw, 'M1')
  const res = await gw.fetchTask('M1')
  await gw.fetchTask('M1', { 'if-none-match': res.headers['etag'] as string })
  const text = await gw.metrics()
  t.equal(sample(text, 'mj_gateway_cache_lookups_total', { result: 'hit' }), 2)
  const route = { method: 'GET', route: '/mj/task/:id/fetch' }
  t.equal(sample(text, 'mj_gateway_http_requests_total', { ...route, status_code: '200' }), 2, 'the MISS and the HIT')
  t.equal(sample(text, 'mj_gateway_http_requests_total', { ...route, status_code: '304' }), 1)
  t.equal(sample(text, 'mj_gateway_http_request_duration_seconds_count', { ...route, status_code: '304' }), 1)
})

t.test('a hostile URL in the access line is escaped: the line stays one JSON object', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info' })
  await gw.get('/mj/task/x/fetch?a="}\\{')
  const line = gw
    .logs()
    .split('\n')
    .find((l) => l.includes('request completed'))
  t.match(JSON.parse(line as string), { req: { url: '/mj/task/x/fetch?a="}\\{' }, msg: 'request completed' })
})

/** The lane as a server's listener, with `next` answering 299, and a rate-limit store the test controls. */
async function laneServer(t: Test, store: Store): Promise<{ lane: HitLane; cache: TaskCache; url: string }> {
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 })
  const metrics = new GatewayMetrics({ cache: { entries: () => 0, bytes: () => 0 }, redis: false })
  const lane = new HitLane(
    {
      cache,
      metrics,
      httpMetrics: true,
      clients: new ClientKeyTable({ clientKeys: [] }),
      ownership: new Ownership({
        enabled: false,
        ownerlessVisible: true,
        ttlMs: 1000,
        store: { owners: (ids) => ids.map(() => undefined), record: () => undefined },
        onDenied: () => undefined,
        onStoreError: () => undefined
      }),
      inflight: new ClientInflight(32),
      rateLimit: new RateLimitCounter(store, 100),
      cors: new CorsPolicy([]),
      clientIp: (req) => req.socket.remoteAddress,
      accessLog: undefined
    },
    (_req, res) => {
      res.writeHead(299)
      res.end('next')
    }
  )
  const server = createServer(lane.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { lane, cache, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

const storeWith = (incr: Store['incr']): Store => ({ incr })

t.test('a rate-limit store that answers later: the cache is looked at once the count is back, and a request whose entry went meanwhile goes on', async (t) => {
  const waiting: Array<() => void> = []
  const s = await laneServer(
    t,
    storeWith((_key, cb) => waiting.push(() => cb(null, { current: 1, ttl: 60_000 })))
  )
  const body = Buffer.from('{"id":"A1","status":"SUCCESS"}')
  s.cache.store('A1', body, '"e1"', true, 60_000, Date.now())
  const served = send('GET', `${s.url}/mj/task/A1/fetch`)
  const gone = send('GET', `${s.url}/mj/task/A1/fetch`)
  while (waiting.length < 2) await new Promise((r) => setTimeout(r, 5))
  ;(waiting.shift() as () => void)()
  const first = await served
  t.equal(first.status, 200)
  t.equal(first.body, body.toString())
  t.equal(first.headers['x-ratelimit-remaining'], '99')
  s.cache.delete('A1')
  ;(waiting.shift() as () => void)()
  t.equal((await gone).status, 299, 'the entry went while the count was in flight: on to Fastify')
  t.equal(s.lane.answered, 1)
  s.cache.store('A1', body, '"e1"', true, 60_000, Date.now())
  const closing = send('GET', `${s.url}/mj/task/A1/fetch`)
  while (waiting.length < 1) await new Promise((r) => setTimeout(r, 5))
  s.lane.closing = true
  ;(waiting.shift() as () => void)()
  const late = await closing
  t.equal(late.status, 200, 'the app started closing while the count was in flight: the lane still answers the request it took')
  t.equal(late.headers['connection'], 'close', 'and lets its socket go')
  t.equal(s.lane.answered, 2)
  s.lane.closing = false
})

t.test('a rate-limit store error, and an app that started closing: on to Fastify', async (t) => {
  const s = await laneServer(
    t,
    storeWith((_key, cb) => cb(new Error('store down')))
  )
  s.cache.store('B1', Buffer.from('{"id":"B1","status":"SUCCESS"}'), '"e2"', true, 60_000, Date.now())
  t.equal((await send('GET', `${s.url}/mj/task/B1/fetch`)).status, 299, 'store error')
  s.lane.closing = true
  t.equal((await send('GET', `${s.url}/mj/task/B1/fetch`)).status, 299, 'closing')
  s.lane.closing = false
  s.lane.underPressure = () => true
  t.equal((await send('GET', `${s.url}/mj/task/B1/fetch`)).status, 299, 'under pressure')
  t.equal(s.lane.answered, 0)
})
