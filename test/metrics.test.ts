/**
 * /metrics read after real traffic (docs/metrics.md).
 */
import t from 'tap'
import { taskBody } from '../src/demo/simulated-upstream.js'
import { REDIS_ONLY_METRIC_NAMES, TENANCY_ONLY_METRIC_NAMES, baseMetricName, metricNamesUsedByDeployFiles } from './helpers/deploy-metrics.js'
import { UPSTREAM_KEY, burstThroughGate, parseMetrics, rawGet, sample, startGatedUpstream, startGateway } from './helpers/gateway.js'
import { get, waitFor } from './helpers/net.js'

const LOOKUPS = 'mj_gateway_cache_lookups_total'
const UPSTREAM = 'mj_gateway_upstream_requests_total'
const HTTP = 'mj_gateway_http_requests_total'
const FETCH_ROUTE = '/mj/task/:id/fetch'

t.test('docs/metrics.md §8 labelled series start at zero, before any traffic', async (t) => {
  const gw = await startGateway(t)
  const m = await gw.metrics()
  for (const result of ['hit', 'miss', 'coalesced', 'stale']) t.equal(sample(m, LOOKUPS, { result }), 0, `lookups ${result}`)
  t.equal(sample(m, LOOKUPS, { result: 'hit_shared' }), undefined, 'hit_shared only with REDIS_URL')
  for (const outcome of ['ok', 'http_4xx', 'http_5xx', 'timeout', 'error']) {
    t.equal(sample(m, UPSTREAM, { outcome }), 0, `upstream ${outcome}`)
    t.equal(sample(m, 'mj_gateway_upstream_request_duration_seconds_count', { outcome }), 0)
    t.equal(sample(m, 'mj_gateway_upstream_request_duration_seconds_bucket', { outcome, le: '+Inf' }), 0)
  }
  t.equal(sample(m, 'mj_gateway_cache_evictions_total'), 0)
  t.equal(sample(m, 'mj_gateway_cache_entries'), 0)
  t.equal(sample(m, 'mj_gateway_cache_size_bytes'), 0)
  t.equal(sample(m, 'mj_gateway_upstream_inflight'), 0)
  t.equal(sample(m, 'mj_gateway_redis_up'), undefined, 'redis_up only with REDIS_URL')
  t.match(m, /^# TYPE mj_gateway_http_requests_total counter$/m)
  t.match(m, /^# TYPE mj_gateway_http_request_duration_seconds histogram$/m)
  t.ok(sample(m, 'process_cpu_seconds_total') !== undefined, 'default process metrics, unprefixed')
  t.ok(sample(m, 'nodejs_heap_size_used_bytes') !== undefined)
  t.equal(gw.upstream.calls, 0)
})

t.test('docs/metrics.md §1 /metrics is Prometheus text and not cached', async (t) => {
  const gw = await startGateway(t)
  const res = await get(`${gw.url}/metrics`)
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal(res.headers['cache-control'], 'no-store')
  t.doesNotThrow(() => parseMetrics(res.body))
})

t.test('docs/metrics.md §2 http requests: counter and histogram by method, route pattern and status; never the raw URL or a task id', async (t) => {
  const gw = await startGateway(t)
  await gw.fetchTask('TASKID-aaa-111')
  await gw.fetchTask('TASKID-bbb-222')
  await gw.fetchTask('TASKID-ccc-333!')
  await rawGet(gw.port, '/no/such/route/UNKNOWNPATH-444')
  await rawGet(gw.port, '/another/UNKNOWNPATH-555?x=1')
  await get(`${gw.url}/healthz`)
  const m = await gw.metrics()
  t.equal(sample(m, HTTP, { method: 'GET', route: FETCH_ROUTE, status_code: '200' }), 2)
  t.equal(sample(m, HTTP, { method: 'GET', route: FETCH_ROUTE, status_code: '400' }), 1, 'a bad id is counted under the pattern')
  t.equal(sample(m, HTTP, { method: 'GET', route: '/healthz', status_code: '200' }), 1)
  t.equal(sample(m, 'mj_gateway_http_request_duration_seconds_count', { method: 'GET', route: FETCH_ROUTE, status_code: '200' }), 2)
  t.equal(sample(m, 'mj_gateway_http_request_duration_seconds_bucket', { method: 'GET', route: FETCH_ROUTE, status_code: '200', le: '+Inf' }), 2)

  const unknown = parseMetrics(m).filter((s) => s.name === HTTP && s.labels['status_code'] === '404')
  t.equal(unknown.length, 1, 'unknown routes collapse into one series')
  t.equal(unknown[0]?.value, 2)
  t.notMatch(unknown[0]?.labels['route'], /UNKNOWNPATH|\//, `route label: ${String(unknown[0]?.labels['route'])}`)

  const routes = new Set(parseMetrics(m).filter((s) => s.labels['route'] !== undefined).map((s) => s.labels['route']))
  t.notMatch(m, /TASKID|UNKNOWNPATH/, 'no raw URL and no task id anywhere')
  // route patterns only (a mode prefix included: docs/compatibility.md), never a raw path
  const pattern = /^(\/mj-(fast|relax|turbo))?\/mj(\/([a-z-]+|:[a-z]+))+$/
  t.ok([...routes].every((r) => r === FETCH_ROUTE || r === '/healthz' || r === '/readyz' || r === '/metrics' || pattern.test(String(r)) || !String(r).includes('/')), [...routes].join(' '))
})

t.test('docs/metrics.md §3 cache lookups by result: hit, miss, coalesced, stale', async (t) => {
  const gate = await startGatedUpstream(t, { body: JSON.stringify(taskBody('T1', 'SUCCESS')) })
  gate.hold = false
  const gw = await startGateway(t, { POLL_CACHE_MS: '0', STALE_IF_ERROR_SECONDS: '60', UPSTREAM_RETRIES: '0' }, { upstreamUrl: gate.url })
  await gw.fetchTask('T1') // miss (terminal, stored)
  await gw.fetchTask('T1') // hit
  await gw.fetchTask('T1') // hit
  gate.answer = { body: JSON.stringify(taskBody('L1', 'IN_PROGRESS')) }
  await burstThroughGate(gw, gate, '/mj/task/L1/fetch', 4) // 1 miss + 3 coalesced
  gate.answer = { status: 500, body: '{}' }
  await gw.fetchTask('L1') // stale
  await gw.fetchTask('X1') // miss (an error is a miss too)
  const m = await gw.metrics()
  t.same(
    ['hit', 'miss', 'coalesced', 'stale'].map((result) => sample(m, LOOKUPS, { result })),
    [2, 3, 3, 1]
  )
})

t.test('docs/metrics.md §4 upstream requests by outcome, one per attempt (retries counted); duration histogram; inflight back to 0', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_TIMEOUT_MS: '1000', UPSTREAM_RETRIES: '2' })
  gw.upstream.enqueue(
    { kind: 'json', body: taskBody('OK1', 'SUCCESS') }, // ok
    { kind: 'json', status: 404, body: {} }, // http_4xx
    { kind: 'json', status: 503, body: {} }, // http_5xx, retried
    { kind: 'json', status: 503, body: {} }, // http_5xx, retried
    { kind: 'json', body: taskBody('R1', 'SUCCESS') }, // ok
    { kind: 'reset' }, // error, retried
    { kind: 'json', body: taskBody('E1', 'SUCCESS') }, // ok
    { kind: 'hang' } // timeout
  )
  t.equal((await gw.fetchTask('OK1')).status, 200)
  t.equal((await gw.fetchTask('N1')).status, 404)
  t.equal((await gw.fetchTask('R1')).status, 200)
  t.equal((await gw.fetchTask('E1')).status, 200)
  t.equal((await gw.fetchTask('H1')).status, 504)
  const m = await gw.metrics()
  const counts = Object.fromEntries(['ok', 'http_4xx', 'http_5xx', 'timeout', 'error'].map((o) => [o, sample(m, UPSTREAM, { outcome: o })]))
  t.same(counts, { ok: 3, http_4xx: 1, http_5xx: 2, timeout: 1, error: 1 })
  for (const [outcome, n] of Object.entries(counts)) {
    t.equal(sample(m, 'mj_gateway_upstream_request_duration_seconds_count', { outcome }), n, `duration count ${outcome}`)
  }
  t.ok((sample(m, 'mj_gateway_upstream_request_duration_seconds_sum', { outcome: 'timeout' }) ?? 0) >= 0.9, 'the timeout took its budget')
  t.equal(sample(m, 'mj_gateway_upstream_inflight'), 0)
  t.equal(gw.upstream.calls, 8)
})

t.test('docs/metrics.md §4 the inflight gauge counts attempts under way', async (t) => {
  const gate = await startGatedUpstream(t, { body: JSON.stringify(taskBody('x', 'SUCCESS')) })
  const gw = await startGateway(t, {}, { upstreamUrl: gate.url })
  const pending = Promise.all([gw.fetchTask('A1'), gw.fetchTask('A2'), gw.fetchTask('A2')])
  await waitFor(() => gate.calls >= 2)
  t.equal(sample(await gw.metrics(), 'mj_gateway_upstream_inflight'), 2, 'two ids, two attempts held by the upstream')
  gate.release()
  await pending
  t.equal(sample(await gw.metrics(), 'mj_gateway_upstream_inflight'), 0)
  t.equal(gate.calls, 2, 'the second A2 coalesced')
})

t.test('docs/metrics.md §3 cache entries and size gauges follow the cache', async (t) => {
  const gw = await startGateway(t)
  const a = await gw.fetchTask('T1')
  const b = await gw.fetchTask('T22')
  const m = await gw.metrics()
  t.equal(sample(m, 'mj_gateway_cache_entries'), 2)
  t.equal(sample(m, 'mj_gateway_cache_size_bytes'), Buffer.byteLength(a.body) + Buffer.byteLength(b.body))
})

t.test('docs/metrics.md §1 METRICS_TOKEN: /metrics needs Authorization: Bearer {token}, else 401', async (t) => {
  const token = 'metrics-token-SECRET-5e1'
  const gw = await startGateway(t, { METRICS_TOKEN: token })
  const attempts: (Record<string, string> | undefined)[] = [undefined, { authorization: 'Bearer wrong' }, { authorization: token }, { authorization: `bearer ${token}x` }, { 'mj-api-secret': token }]
  for (const headers of attempts) {
    const res = await get(`${gw.url}/metrics`, headers)
    t.equal(res.status, 401, JSON.stringify(headers ?? {}))
    t.same(res.json(), { statusCode: 401, code: 'MJGW_UNAUTHORIZED', error: 'Unauthorized', message: 'missing or invalid client token' })
  }
  const ok = await get(`${gw.url}/metrics`, { authorization: `Bearer ${token}` })
  t.equal(ok.status, 200)
  t.match(ok.body, /mj_gateway_cache_lookups_total/)
  t.notMatch(ok.body, token)
  t.equal(sample(ok.body, HTTP, { method: 'GET', route: '/metrics', status_code: '401' }), 5, 'refusals are counted')
  t.equal((await get(`${gw.url}/healthz`)).status, 200, 'health needs no token')
})

t.test('docs/metrics.md §8 no secret and no task id in the metrics text', async (t) => {
  const gw = await startGateway(t, { METRICS_TOKEN: 'metrics-SECRET-a' })
  await gw.fetchTask('SECRETTASK-1', { authorization: 'Bearer client-SECRET-b', cookie: 'sid=cookie-SECRET-c' })
  gw.upstream.enqueue({ kind: 'json', status: 401, body: {} })
  await gw.fetchTask('SECRETTASK-2', { authorization: 'Bearer client-SECRET-b' })
  const m = (await get(`${gw.url}/metrics`, { authorization: 'Bearer metrics-SECRET-a' })).body
  for (const secret of [UPSTREAM_KEY, 'metrics-SECRET-a', 'client-SECRET-b', 'cookie-SECRET-c', 'SECRETTASK']) t.notMatch(m, secret, secret)
  t.notMatch(m, gw.config.upstream.keyFingerprint, 'not even the key fingerprint')
})

t.test('docs/metrics.md §9 every metric the Grafana dashboard and the alert rules use is exported after a little traffic', async (t) => {
  const gw = await startGateway(t)
  await gw.fetchTask('T1')
  await gw.fetchTask('T1')
  const exported = new Set(parseMetrics(await gw.metrics()).map((s) => baseMetricName(s.name)))
  const used = metricNamesUsedByDeployFiles().filter((n) => !REDIS_ONLY_METRIC_NAMES.includes(n) && !TENANCY_ONLY_METRIC_NAMES.includes(n))
  t.ok(used.length > 5, `${used.length} names used`)
  for (const name of used) t.ok(exported.has(name), name)
})
