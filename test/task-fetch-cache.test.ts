/**
 * GET /mj/task/:id/fetch: the 200 headers (docs/headers.md §2–§4) and every caching rule (docs/caching.md), through real sockets,
 * asserting on the fake upstream's call counts.
 */
import t, { type Test } from 'tap'
import { imageUrlExpiringAt, taskBody, type Behavior } from '../src/demo/simulated-upstream.js'
import { send, waitFor, type HttpResult } from './helpers/net.js'
import { burstThroughGate, sample, startGatedUpstream, startGateway, type Gateway } from './helpers/gateway.js'
import { ManualClock } from './helpers/manual-clock.js'

const JSON_UTF8 = 'application/json; charset=utf-8'
const nowS = () => Math.floor(Date.now() / 1000)
const task = (id: string, status: string, overrides?: Record<string, unknown>): Behavior => ({
  kind: 'json',
  body: taskBody(id, status, overrides)
})
const maxAge = (res: HttpResult): number => Number(/^private, max-age=(\d+)$/.exec(res.headers['cache-control'] ?? '')?.[1] ?? NaN)

const count = (results: HttpResult[], xcache: string) => results.filter((r) => r.headers['x-cache'] === xcache).length

t.test('docs/http-api.md §2 200: the upstream body byte for byte, as application/json; charset=utf-8, with x-cache, etag and cache-control', async (t) => {
  const gw = await startGateway(t)
  const odd = '{ "id" : "T1",\n  "status":"IN_PROGRESS", "prompt": "猪 🐷", "progress":"42%" }'
  gw.upstream.enqueue({ kind: 'raw', body: odd, headers: { 'content-type': 'text/plain' } })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 200)
  t.equal(res.body, odd, 'byte for byte')
  t.equal(res.headers['content-type'], JSON_UTF8)
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal(res.headers['cache-control'], 'no-cache', 'a live task')
  t.match(res.headers['etag'], /^"[^"]+"$/)
})

t.test('docs/caching.md §1, §2 a terminal task is cached: the storing response already says private, max-age=N (N ≤ CACHE_TTL_SECONDS), then HIT', async (t) => {
  const gw = await startGateway(t, { CACHE_TTL_SECONDS: '60' })
  for (const status of ['SUCCESS', 'FAILURE', 'CANCEL']) {
    const id = `T-${status}`
    gw.upstream.enqueue(task(id, status))
    const first = await gw.fetchTask(id)
    t.equal(first.headers['x-cache'], 'MISS', status)
    t.ok(maxAge(first) <= 60 && maxAge(first) >= 58, `${status}: storing response says ${first.headers['cache-control']}`)
    const second = await gw.fetchTask(id)
    t.equal(second.headers['x-cache'], 'HIT')
    t.equal(second.body, first.body)
    t.equal(second.headers['etag'], first.headers['etag'])
    t.equal(second.headers['content-type'], JSON_UTF8)
    t.ok(maxAge(second) <= maxAge(first), `HIT: ${second.headers['cache-control']}`)
  }
  t.equal(gw.upstream.calls, 3, 'one upstream call per task')
})

t.test('docs/caching.md §2 a terminal entry lives CACHE_TTL_SECONDS, then upstream is asked again', async (t) => {
  const clock = new ManualClock()
  const gw = await startGateway(t, { CACHE_TTL_SECONDS: '1', STALE_IF_ERROR_SECONDS: '0' }, { clock })
  t.equal((await gw.fetchTask('T1')).headers['cache-control'], 'private, max-age=1')
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'HIT')
  clock.advance(999)
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'HIT', '1 ms before the end of its life')
  clock.advance(2)
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'MISS')
  t.equal(gw.upstream.calls, 2)
})

t.test('docs/caching.md §2 a task dies before its imageUrl expires: ex − CACHE_URL_EXPIRY_MARGIN_SECONDS caps max-age', async (t) => {
  const gw = await startGateway(t, { CACHE_TTL_SECONDS: '3600', CACHE_URL_EXPIRY_MARGIN_SECONDS: '300' })
  const ex = nowS() + 300 + 40
  gw.upstream.setHandler(() => task('T1', 'SUCCESS', { imageUrl: imageUrlExpiringAt(ex) }))
  const first = await gw.fetchTask('T1')
  t.equal(first.headers['x-cache'], 'MISS')
  t.ok(maxAge(first) >= 35 && maxAge(first) <= 40, `max-age reflects ex: ${first.headers['cache-control']}`)
  const hit = await gw.fetchTask('T1')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.ok(maxAge(hit) <= 40)
  t.equal(gw.upstream.calls, 1)
})

t.test('docs/caching.md §2 a terminal task whose imageUrl is already inside the margin is not cached at all', async (t) => {
  const gw = await startGateway(t, { CACHE_URL_EXPIRY_MARGIN_SECONDS: '300', POLL_CACHE_MS: '5000' })
  gw.upstream.setHandler(() => task('T1', 'SUCCESS', { imageUrl: imageUrlExpiringAt(nowS() + 200) }))
  for (let i = 0; i < 3; i++) {
    const res = await gw.fetchTask('T1')
    t.equal(res.headers['x-cache'], 'MISS')
    t.equal(res.headers['cache-control'], 'no-cache')
  }
  t.equal(gw.upstream.calls, 3)
})

t.test('docs/caching.md §3 a live state is reused for POLL_CACHE_MS by every poller (x-cache HIT, cache-control no-cache)', async (t) => {
  const gw = await startGateway(t, { POLL_CACHE_MS: '3000' })
  for (const status of ['NOT_START', 'SUBMITTED', 'MODAL', 'IN_PROGRESS', '']) {
    const id = `L${status}`
    gw.upstream.enqueue(task(id, status))
    const first = await gw.fetchTask(id)
    t.same([first.headers['x-cache'], first.headers['cache-control']], ['MISS', 'no-cache'], `"${status}"`)
    const other = await gw.fetchTask(id, { authorization: 'Bearer another-poller', cookie: 'x=1' })
    t.same([other.headers['x-cache'], other.headers['cache-control']], ['HIT', 'no-cache'], 'another poller')
    t.equal(other.body, first.body)
    t.equal(other.headers['etag'], first.headers['etag'])
    t.equal((await gw.fetchTask(id)).headers['x-cache'], 'HIT', 'the same poller')
  }
  t.equal(gw.upstream.calls, 5)
})

t.test('docs/caching.md §3 after POLL_CACHE_MS a live task is asked again', async (t) => {
  const clock = new ManualClock()
  const gw = await startGateway(t, { POLL_CACHE_MS: '200' }, { clock })
  gw.upstream.setHandler(() => task('T1', 'IN_PROGRESS'))
  await gw.fetchTask('T1')
  clock.advance(199)
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'HIT', 'within POLL_CACHE_MS')
  clock.advance(1)
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'MISS')
  t.equal(gw.upstream.calls, 2)
})

t.test('docs/caching.md §3 POLL_CACHE_MS=0: a live task is never reused', async (t) => {
  const gw = await startGateway(t, { POLL_CACHE_MS: '0' })
  gw.upstream.setHandler(() => task('T1', 'IN_PROGRESS'))
  const results = [await gw.fetchTask('T1'), await gw.fetchTask('T1'), await gw.fetchTask('T1')]
  t.same(results.map((r) => r.headers['x-cache']), ['MISS', 'MISS', 'MISS'])
  t.equal(gw.upstream.calls, 3)
})

t.test('docs/caching.md §1 a body whose id is another task\'s is passed through but never cached (not even for POLL_CACHE_MS)', async (t) => {
  const gw = await startGateway(t, { POLL_CACHE_MS: '5000', STALE_IF_ERROR_SECONDS: '60' })
  for (const status of ['IN_PROGRESS', 'SUCCESS']) {
    gw.upstream.reset()
    const foreign = JSON.stringify(taskBody('OTHER', status))
    gw.upstream.setHandler(() => ({ kind: 'raw', body: foreign }))
    const first = await gw.fetchTask('T1')
    t.equal(first.status, 200)
    t.equal(first.body, foreign, 'passed through')
    t.same([first.headers['x-cache'], first.headers['cache-control']], ['MISS', 'no-cache'], status)
    t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'MISS', 'not reused')
    t.equal(gw.upstream.calls, 2)
    // nor kept as a stand-in
    gw.upstream.setHandler(() => ({ kind: 'json', status: 500, body: {} }))
    t.equal((await gw.fetchTask('T1')).status, 502, 'never stands in either')
  }
  gw.upstream.reset()
  gw.upstream.setHandler(() => ({ kind: 'json', body: { status: 'SUCCESS' } }))
  await gw.fetchTask('T1')
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'MISS', 'a body without an id is not cached either')
})

t.test('docs/caching.md §4 single-flight: 50 concurrent requests for one id → 1 upstream call, 1 MISS + 49 COALESCED', async (t) => {
  const gate = await startGatedUpstream(t, { body: JSON.stringify(taskBody('T1', 'SUCCESS')) })
  const gw = await startGateway(t, {}, { upstreamUrl: gate.url })
  const results = await burstThroughGate(gw, gate, '/mj/task/T1/fetch', 50)
  t.equal(gate.calls, 1)
  t.equal(count(results, 'MISS'), 1)
  t.equal(count(results, 'COALESCED'), 49)
  t.ok(results.every((r) => r.status === 200 && r.body === results[0]?.body && r.headers['etag'] === results[0]?.headers['etag']))
  t.ok(results.every((r) => r.headers['cache-control'] === results[0]?.headers['cache-control'] && maxAge(r) > 0), 'COALESCED carries max-age too')
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'HIT')
  t.equal(gate.calls, 1)
})

t.test('docs/caching.md §4 single-flight holds for answers that are not cached: a live task with POLL_CACHE_MS=0, a foreign body, a 404, an error', async (t) => {
  const gate = await startGatedUpstream(t, { body: '' })
  const gw = await startGateway(t, { POLL_CACHE_MS: '0', STALE_IF_ERROR_SECONDS: '0', UPSTREAM_RETRIES: '0' }, { upstreamUrl: gate.url })
  const cases: [string, { status?: number; body: string }, number][] = [
    ['live', { body: JSON.stringify(taskBody('T1', 'IN_PROGRESS')) }, 200],
    ['foreign', { body: JSON.stringify(taskBody('OTHER', 'SUCCESS')) }, 200],
    ['upstream 404', { status: 404, body: '{"error":"nope"}' }, 404],
    ['null', { body: 'null' }, 404],
    ['upstream 500', { status: 500, body: '{}' }, 502]
  ]
  for (const [name, answer, status] of cases) {
    gate.answer = answer
    const before = gate.calls
    const results = await burstThroughGate(gw, gate, '/mj/task/T1/fetch', 50)
    t.equal(gate.calls - before, 1, `${name}: one upstream call`)
    t.ok(results.every((r) => r.status === status && r.body === results[0]?.body), `${name}: all ${status}`)
    if (status === 200) t.same([count(results, 'MISS'), count(results, 'COALESCED')], [1, 49], `${name}: 1 MISS + 49 COALESCED`)
    await gw.fetchTask('T1')
    t.equal(gate.calls - before, 2, `${name}: not cached afterwards`)
  }
})

t.test('docs/caching.md §5 errors are never cached', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_RETRIES: '0', STALE_IF_ERROR_SECONDS: '0' })
  const errors: Behavior[] = [
    { kind: 'json', status: 500, body: {} },
    { kind: 'json', status: 404, body: {} },
    { kind: 'json', status: 401, body: {} },
    { kind: 'raw', body: 'null' },
    { kind: 'raw', body: 'garbage' },
    { kind: 'reset' }
  ]
  for (const [i, e] of errors.entries()) {
    gw.upstream.reset()
    gw.upstream.enqueue(e)
    const id = `E${i}`
    t.not((await gw.fetchTask(id)).status, 200)
    const next = await gw.fetchTask(id)
    t.same([next.status, next.headers['x-cache']], [200, 'MISS'], `after ${e.kind} ${'status' in e ? String(e.status) : ''}`)
    t.equal(gw.upstream.calls, 2)
  }
})

/** a gateway that has seen T1 live once; POLL_CACHE_MS=0 so every later request goes upstream */
async function afterLive200(t: Test, env: Record<string, string> = {}, clock?: ManualClock): Promise<{ gw: Gateway; live: HttpResult }> {
  const gw = await startGateway(t, { POLL_CACHE_MS: '0', STALE_IF_ERROR_SECONDS: '60', UPSTREAM_TIMEOUT_MS: '300', ...env }, { clock })
  gw.upstream.enqueue(task('T1', 'IN_PROGRESS'))
  const live = await gw.fetchTask('T1')
  t.same([live.status, live.headers['x-cache']], [200, 'MISS'])
  return { gw, live }
}

t.test('docs/caching.md §5 STALE: after a live 200, an upstream failure (5xx, timeout, unreachable, bad body) is stood in for', async (t) => {
  const { gw, live } = await afterLive200(t)
  const failures: [string, Behavior][] = [
    ['500', { kind: 'json', status: 500, body: {} }],
    ['503 ×3', { kind: 'json', status: 503, body: {} }],
    ['timeout', { kind: 'hang' }],
    ['reset', { kind: 'reset' }],
    ['garbage', { kind: 'raw', body: '<html>' }],
    ['a JSON array', { kind: 'raw', body: '[]' }],
    ['too large', { kind: 'huge', bytes: 11 * 1024 * 1024 }],
    ['302', { kind: 'raw', status: 302, body: '' }]
  ]
  for (const [name, failure] of failures) {
    gw.upstream.setHandler(() => failure)
    const res = await gw.fetchTask('T1')
    t.same([res.status, res.headers['x-cache'], res.headers['cache-control']], [200, 'STALE', 'no-cache'], name)
    t.equal(res.body, live.body, `${name}: the last-known body`)
    t.equal(res.headers['etag'], live.headers['etag'])
    t.equal(res.headers['content-type'], JSON_UTF8)
  }
})

t.test('docs/caching.md §5 STALE: requests coalesced onto the failed call get STALE too', async (t) => {
  const gate = await startGatedUpstream(t, { body: JSON.stringify(taskBody('T1', 'IN_PROGRESS')) })
  gate.hold = false
  const gw = await startGateway(t, { POLL_CACHE_MS: '0', STALE_IF_ERROR_SECONDS: '60', UPSTREAM_RETRIES: '0' }, { upstreamUrl: gate.url })
  const live = await gw.fetchTask('T1')
  gate.answer = { status: 500, body: '{}' }
  const results = await burstThroughGate(gw, gate, '/mj/task/T1/fetch', 20)
  t.equal(gate.calls, 2, 'one call for the live 200, one for the 20 requests')
  t.equal(count(results, 'STALE'), 20)
  t.ok(results.every((r) => r.status === 200 && r.headers['cache-control'] === 'no-cache' && r.body === live.body))
})

t.test('docs/caching.md §5 upstream answers (4xx, 401/403, null) are never stood in for', async (t) => {
  const { gw } = await afterLive200(t)
  const answers: [Behavior, number, string | undefined][] = [
    [{ kind: 'json', status: 404, body: { error: 'gone' } }, 404, undefined],
    [{ kind: 'json', status: 429, body: {} }, 429, undefined],
    [{ kind: 'json', status: 400, body: {} }, 400, undefined],
    [{ kind: 'json', status: 401, body: {} }, 502, 'MJGW_UPSTREAM_AUTH'],
    [{ kind: 'json', status: 403, body: {} }, 502, 'MJGW_UPSTREAM_AUTH']
  ]
  for (const [answer, status, code] of answers) {
    gw.upstream.setHandler(() => answer)
    const res = await gw.fetchTask('T1')
    t.equal(res.status, status, `upstream ${'status' in answer ? String(answer.status) : ''}`)
    if (code !== undefined) t.match(res.json(), { code })
  }
  gw.upstream.setHandler(() => ({ kind: 'raw', body: 'null' }))
  t.match((await gw.fetchTask('T1')).json(), { code: 'MJGW_TASK_NOT_FOUND' })
})

t.test('docs/caching.md §5 STALE_IF_ERROR_SECONDS=0: nothing stands in', async (t) => {
  const { gw } = await afterLive200(t, { STALE_IF_ERROR_SECONDS: '0' })
  gw.upstream.setHandler(() => ({ kind: 'json', status: 500, body: {} }))
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 502)
  t.match(res.json(), { code: 'MJGW_UPSTREAM_ERROR' })
})

t.test('docs/caching.md §5 a last-known response older than STALE_IF_ERROR_SECONDS does not stand in', async (t) => {
  const clock = new ManualClock()
  const { gw } = await afterLive200(t, { STALE_IF_ERROR_SECONDS: '1' }, clock)
  gw.upstream.setHandler(() => ({ kind: 'json', status: 500, body: {} }))
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'STALE', 'young enough')
  clock.advance(999)
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'STALE', 'still young enough 1 ms before the end')
  clock.advance(2)
  t.equal((await gw.fetchTask('T1')).status, 502, 'too old')
})

t.test('docs/caching.md §6 CACHE_MAX_BYTES bounds the cache; the least recently used goes first (and is counted)', async (t) => {
  const size = Buffer.byteLength(JSON.stringify(taskBody('A', 'SUCCESS')))
  const gw = await startGateway(t, { CACHE_MAX_BYTES: String(size * 3 + 10), STALE_IF_ERROR_SECONDS: '0' })
  const hit = async (id: string) => (await gw.fetchTask(id)).headers['x-cache']
  for (const id of ['A', 'B', 'C']) t.equal(await hit(id), 'MISS')
  t.equal(await hit('A'), 'HIT', 'A is now more recent than B')
  t.equal(await hit('D'), 'MISS')
  let m = await gw.metrics()
  t.equal(sample(m, 'mj_gateway_cache_evictions_total'), 1)
  t.equal(sample(m, 'mj_gateway_cache_entries'), 3)
  t.equal(sample(m, 'mj_gateway_cache_size_bytes'), size * 3)
  t.equal(await hit('A'), 'HIT')
  t.equal(await hit('C'), 'HIT')
  t.equal(await hit('D'), 'HIT')
  t.equal(gw.upstream.calls, 4)
  t.equal(await hit('B'), 'MISS', 'B, the least recently used, was evicted')
  t.equal(gw.upstream.calls, 5)
  m = await gw.metrics()
  t.equal(sample(m, 'mj_gateway_cache_evictions_total'), 2, 'storing B again evicted A')
  t.equal(await hit('A'), 'MISS')
})

t.test('docs/headers.md §3 an etag on every 200; If-None-Match with it → 304 without a body (MISS, HIT, COALESCED, STALE)', async (t) => {
  const gw = await startGateway(t, { POLL_CACHE_MS: '0', STALE_IF_ERROR_SECONDS: '60' })
  gw.upstream.setHandler(() => task('L1', 'IN_PROGRESS'))
  const first = await gw.fetchTask('L1')
  const etag = first.headers['etag'] as string
  t.match(etag, /^"[^"]+"$/)

  const miss = await gw.fetchTask('L1', { 'if-none-match': etag })
  t.same([miss.status, miss.body, miss.headers['x-cache'], miss.headers['etag']], [304, '', 'MISS', etag], 'MISS → 304')
  t.equal(gw.upstream.calls, 2, 'the MISS asked upstream')
  t.notOk(miss.headers['content-type'])

  for (const header of [`W/${etag}`, `"nope", ${etag}`, '*']) {
    t.equal((await gw.fetchTask('L1', { 'if-none-match': header })).status, 304, header)
  }
  for (const header of ['"nope"', etag.slice(0, -2) + '"', '']) {
    const res = await gw.fetchTask('L1', { 'if-none-match': header })
    t.same([res.status, res.body], [200, first.body], `${JSON.stringify(header)} does not match`)
  }

  const gate = await startGatedUpstream(t, { body: first.body })
  const gated = await startGateway(t, { POLL_CACHE_MS: '0' }, { upstreamUrl: gate.url })
  const coalesced = await burstThroughGate(gated, gate, '/mj/task/L1/fetch', 2, { 'if-none-match': etag })
  t.same(coalesced.map((r) => [r.status, r.headers['x-cache']]).sort(), [[304, 'COALESCED'], [304, 'MISS']])

  gw.upstream.setHandler(() => ({ kind: 'json', status: 500, body: {} }))
  const stale = await gw.fetchTask('L1', { 'if-none-match': etag })
  t.same([stale.status, stale.headers['x-cache'], stale.headers['cache-control']], [304, 'STALE', 'no-cache'])

  gw.upstream.setHandler(() => task('T1', 'SUCCESS'))
  const stored = await gw.fetchTask('T1')
  const hit = await gw.fetchTask('T1', { 'if-none-match': stored.headers['etag'] as string })
  t.same([hit.status, hit.body, hit.headers['x-cache']], [304, '', 'HIT'], 'HIT → 304')
  t.match(hit.headers['cache-control'], /^private, max-age=\d+$/)
  t.equal(hit.headers['etag'], stored.headers['etag'])
})

t.test('docs/headers.md §3 the etag changes when the body does', async (t) => {
  const gw = await startGateway(t, { POLL_CACHE_MS: '0' })
  gw.upstream.enqueue(task('T1', 'IN_PROGRESS', { progress: '10%' }), task('T1', 'IN_PROGRESS', { progress: '20%' }))
  const a = await gw.fetchTask('T1')
  const b = await gw.fetchTask('T1', { 'if-none-match': a.headers['etag'] as string })
  t.equal(b.status, 200, 'progress moved: a new body, not a 304')
  t.not(b.headers['etag'], a.headers['etag'])
})

t.test('docs/caching.md §4 a client that goes away while coalesced breaks nothing for the others', async (t) => {
  const gate = await startGatedUpstream(t, { body: JSON.stringify(taskBody('T1', 'SUCCESS')) })
  const gw = await startGateway(t, {}, { upstreamUrl: gate.url })
  const controllers = [new AbortController(), new AbortController()]
  const leaving = controllers.map((c) => send('GET', `${gw.url}/mj/task/T1/fetch`, { signal: c.signal }).catch((err: Error) => err.name))
  const staying = gw.fetchTask('T1')
  await waitFor(() => gate.calls === 1)
  for (const c of controllers) c.abort()
  t.same(await Promise.all(leaving), ['AbortError', 'AbortError'])
  gate.release()
  const res = await staying
  t.equal(res.status, 200)
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'HIT', 'the answer was stored')
  t.equal(gate.calls, 1)
})

t.test('docs/http-api.md §1 HEAD answers like GET without a body', async (t) => {
  const gw = await startGateway(t)
  const first = await send('HEAD', `${gw.url}/mj/task/T1/fetch`)
  t.same([first.status, first.body, first.headers['x-cache']], [200, '', 'MISS'])
  t.match(first.headers['etag'], /^"/)
  const second = await send('HEAD', `${gw.url}/mj/task/T1/fetch`)
  t.same([second.status, second.headers['x-cache']], [200, 'HIT'])
  t.equal(gw.upstream.calls, 1)
})

t.test('the suite runs with the lane HIT_LANE asks for: npm test runs the hit-path suites with it on, then off', async (t) => {
  const gw = await startGateway(t)
  const want = process.env.HIT_LANE === 'off' ? 'off' : 'on'
  t.equal(gw.config.hitLane, want, 'startGateway passes HIT_LANE into the config')
  await gw.fetchTask('T1')
  t.equal((await gw.fetchTask('T1')).headers['x-cache'], 'HIT')
  t.equal(gw.app.hitLane?.answered ?? 0, want === 'on' ? 1 : 0, 'the hit was answered by the lane exactly when it is on')
})
