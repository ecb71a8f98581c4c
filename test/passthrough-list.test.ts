import t, { type Test } from 'tap'
import { MAX_LIST_IDS } from '../src/routes/passthrough.js'
import { startSimulatedUpstream, type SimulatedUpstream, type Handler, type RecordedRequest } from '../src/demo/simulated-upstream.js'
import { startGateway, CLIENT_AUTH, CLIENT_TOKEN, type Gateway } from './helpers/gateway.js'
import { type HttpResult } from './helpers/net.js'

/** as these tests were written: no rate limit unless a test sets one, info logs */
const PASSTHROUGH_ENV = { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'info' }

const LIST = '/mj/task/list-by-condition'
const GUARDED = { CLIENT_KEYS: `ci:${CLIENT_TOKEN}`, POLL_CACHE_MS: '60000' }
const HOUR_AHEAD = (): string => Math.floor(Date.now() / 1000 + 86400).toString(16)

/** Task bodies as a Go relay writes them (`&` escaped as \u0026), so byte-for-byte claims are tested for real. */
function task(id: string, status: string, imageUrlEx = HOUR_AHEAD()): string {
  const url = status === 'SUCCESS' ? `https://cdn.example.com/${id}.png?ex=${imageUrlEx}\\u0026is=1\\u0026` : ''
  return `{"id":"${id}","action":"IMAGINE","status":"${status}","progress":"${status === 'SUCCESS' ? '100%' : '40%'}","imageUrl":"${url}","buttons":[]}`
}

interface Upstream extends SimulatedUpstream {
  /** the upstream's tasks by id, answered by list-by-condition and fetch */
  tasks: Map<string, string>
  /** list-by-condition calls, with the ids each asked for */
  listCalls(): string[][]
}

/** An upstream that answers list-by-condition in its own order (reversed) and adds a task nobody asked for. */
async function upstream(t: Test): Promise<Upstream> {
  const tasks = new Map<string, string>()
  tasks.set('intruder', task('intruder', 'SUCCESS'))
  const handler: Handler = (req: RecordedRequest) => {
    if (req.url === LIST) {
      const { ids } = JSON.parse(req.body.toString()) as { ids: string[] }
      const found = [...ids, 'intruder'].reverse().flatMap((id) => tasks.get(id) ?? [])
      return { kind: 'raw', body: `[\n  ${found.join(',\n  ')}\n]` }
    }
    const id = /^\/mj\/task\/([^/]+)\/fetch$/.exec(req.url)?.[1] ?? ''
    return { kind: 'raw', body: tasks.get(id) ?? 'null' }
  }
  const up = await startSimulatedUpstream({ handler })
  t.teardown(() => up.close())
  return Object.assign(up, {
    tasks,
    listCalls: () => up.requests.filter((r) => r.url === LIST).map((r) => (JSON.parse(r.body.toString()) as { ids: string[] }).ids)
  })
}

const list = (gw: Gateway, ids: unknown): Promise<HttpResult> => gw.post(LIST, { ids }, CLIENT_AUTH)
const ids = (r: HttpResult): string[] => (r.json() as Array<{ id: string }>).map((x) => x.id)

function isError(t: Test, r: HttpResult, status: number, code: string): void {
  t.equal(r.status, status, `status ${status}: ${r.text.slice(0, 200)}`)
  t.same(r.json(), { statusCode: status, code, error: (r.json() as { error: string }).error, message: (r.json() as { message: string }).message })
  t.equal((r.json() as { code: string }).code, code)
}

t.test('docs/http-api.md §6 list-by-condition: 1–100 valid ids, else 400 with no upstream call', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const bad: unknown[] = [
    {},
    { ids: [] },
    { ids: null },
    { ids: 'A1' },
    { ids: { 0: 'A1' } },
    { ids: [1.5] },
    { ids: [-17] },
    { ids: [2 ** 53] },
    { ids: [1e21] },
    { ids: [true] },
    { ids: ['A1', null] },
    { ids: ['A1', ['B1']] },
    { ids: ['bad.id'] },
    { ids: ['a/../list'] },
    { ids: [''] },
    { ids: ['x'.repeat(65)] },
    { ids: Array.from({ length: MAX_LIST_IDS + 1 }, (_, i) => `T${i}`) },
    [{ ids: ['A1'] }],
    '"A1"'
  ]
  for (const body of bad) {
    const r = await gw.post(LIST, body, CLIENT_AUTH)
    t.equal(r.status, 400, JSON.stringify(body).slice(0, 60))
    t.equal((r.json() as { code: string }).code, 'FST_ERR_VALIDATION')
  }
  isError(t, await gw.request('POST', LIST, { headers: CLIENT_AUTH }), 400, 'FST_ERR_VALIDATION')
  isError(t, await gw.post(LIST, '{"ids":', CLIENT_AUTH), 400, 'FST_ERR_CTP_INVALID_JSON_BODY')
  t.same(up.requests, [], 'no upstream call')

  const hundred = Array.from({ length: MAX_LIST_IDS }, (_, i) => `T${i}`)
  up.tasks.set('T7', task('T7', 'SUCCESS'))
  const r = await list(gw, hundred)
  t.equal(r.status, 200, 'exactly 100 ids are fine')
  t.same(ids(r), ['T7'])
  t.same(up.listCalls(), [hundred], 'one upstream call with the 100 ids')
})

t.test('docs/http-api.md §6 list-by-condition: cached terminal ids answered locally, the rest asked upstream in one call, terminal results stored, requested order, unknown left out, x-cache-hits', async (t) => {
  const up = await upstream(t)
  up.tasks.set('A1', task('A1', 'SUCCESS'))
  up.tasks.set('B2', task('B2', 'IN_PROGRESS'))
  up.tasks.set('C3', task('C3', 'FAILURE'))
  up.tasks.set('D4', task('D4', 'CANCEL'))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })

  const first = await list(gw, ['A1', 'B2', 'unknown', 'C3'])
  t.equal(first.status, 200)
  t.match(first.headers['content-type'], /^application\/json/)
  t.equal(first.headers['x-cache-hits'], '0')
  t.equal(first.text, `[${up.tasks.get('A1')},${up.tasks.get('B2')},${up.tasks.get('C3')}]`, 'requested order, upstream bytes, unknown and unasked ids left out')
  t.same(up.listCalls(), [['A1', 'B2', 'unknown', 'C3']])

  const second = await list(gw, ['C3', 'D4', 'B2', 'A1', 'unknown'])
  t.equal(second.headers['x-cache-hits'], '2', 'A1 and C3 came from the cache')
  t.same(ids(second), ['C3', 'D4', 'B2', 'A1'])
  t.same(up.listCalls()[1], ['D4', 'B2', 'unknown'], 'one call, for the ids not cached as terminal')

  const third = await list(gw, ['D4', 'A1', 'C3'])
  t.equal(third.headers['x-cache-hits'], '3')
  t.equal(third.text, `[${up.tasks.get('D4')},${up.tasks.get('A1')},${up.tasks.get('C3')}]`)
  t.equal(up.listCalls().length, 2, 'all cached: no upstream call at all')
})

t.test('docs/caching.md §9 list-by-condition stores terminal results that GET /mj/task/:id/fetch then serves as HIT, byte for byte', async (t) => {
  const up = await upstream(t)
  up.tasks.set('A1', task('A1', 'SUCCESS'))
  up.tasks.set('B2', task('B2', 'IN_PROGRESS'))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  await list(gw, ['A1', 'B2'])
  const hit = await gw.request('GET', '/mj/task/A1/fetch', { headers: CLIENT_AUTH })
  t.equal(hit.status, 200)
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.text, up.tasks.get('A1'), 'the element bytes as upstream wrote them (\\u0026 kept)')
  t.match(hit.headers['cache-control'], /^private, max-age=\d+$/)
  t.ok(hit.headers.etag)
  const live = await gw.request('GET', '/mj/task/B2/fetch', { headers: CLIENT_AUTH })
  t.equal(live.headers['x-cache'], 'MISS', 'a live task from a list is not stored')
  t.equal(up.requests.filter((r) => r.url.endsWith('/fetch')).length, 1, 'only B2 was fetched upstream')
})

t.test('docs/caching.md §9 list-by-condition answers a terminal task cached by fetch from the cache, but not a live poll-cache entry', async (t) => {
  const up = await upstream(t)
  up.tasks.set('A1', task('A1', 'SUCCESS'))
  up.tasks.set('B2', task('B2', 'IN_PROGRESS'))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const fetched = await gw.request('GET', '/mj/task/A1/fetch', { headers: CLIENT_AUTH })
  t.equal(fetched.headers['x-cache'], 'MISS')
  const polled = await gw.request('GET', '/mj/task/B2/fetch', { headers: CLIENT_AUTH })
  t.equal((await gw.request('GET', '/mj/task/B2/fetch', { headers: CLIENT_AUTH })).headers['x-cache'], 'HIT', 'B2 is in the poll cache')

  const fromCache = await list(gw, ['A1'])
  t.equal(fromCache.headers['x-cache-hits'], '1')
  t.equal(fromCache.text, `[${fetched.text}]`)
  t.same(up.listCalls(), [], 'no upstream call for a cached terminal task')

  up.tasks.set('B2', task('B2', 'SUCCESS'))
  const live = await list(gw, ['B2'])
  t.equal(live.headers['x-cache-hits'], '0', 'a live poll-cache entry is not a cached terminal state')
  t.same(up.listCalls(), [['B2']])
  t.not(live.text, `[${polled.text}]`, 'the answer is upstream’s current state')
  t.equal(live.text, `[${up.tasks.get('B2')}]`)
  t.equal((await gw.request('GET', '/mj/task/B2/fetch', { headers: CLIENT_AUTH })).headers['x-cache'], 'HIT')
})

t.test('docs/caching.md §2 list-by-condition: a terminal task whose imageUrl is inside the expiry margin is not cached', async (t) => {
  const up = await upstream(t)
  const soon = Math.floor(Date.now() / 1000 + 100).toString(16)
  up.tasks.set('A1', task('A1', 'SUCCESS', soon))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, CACHE_URL_EXPIRY_MARGIN_SECONDS: '300' }, { upstreamUrl: up.url })
  await gw.request('GET', '/mj/task/A1/fetch', { headers: CLIENT_AUTH })
  t.equal((await list(gw, ['A1'])).headers['x-cache-hits'], '0')
  t.equal((await list(gw, ['A1'])).headers['x-cache-hits'], '0')
  t.equal(up.listCalls().length, 2)
  t.equal((await gw.request('GET', '/mj/task/A1/fetch', { headers: CLIENT_AUTH })).headers['x-cache'], 'MISS')
})

t.test('docs/http-api.md §6 list-by-condition: a repeated id is answered once, at its first position, and asked upstream once', async (t) => {
  const up = await upstream(t)
  up.tasks.set('A1', task('A1', 'SUCCESS'))
  up.tasks.set('B2', task('B2', 'FAILURE'))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const r = await list(gw, ['B2', 'A1', 'B2', 'A1'])
  t.same(ids(r), ['B2', 'A1'])
  t.same(up.listCalls(), [['B2', 'A1']])
  const again = await list(gw, ['A1', 'A1', 'B2'])
  t.same(ids(again), ['A1', 'B2'])
  t.equal(again.headers['x-cache-hits'], '2')
})

t.test('docs/http-api.md §6 list-by-condition: odd upstream elements are skipped; empty, null and [] answers mean no tasks', async (t) => {
  const up = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => up.close())
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const a = task('A1', 'SUCCESS')
  up.setHandler(() => ({ kind: 'raw', body: `[null, 7, "A1", ["A1"], {"noid":true}, {"id":7}, ${a}, ${task('A1', 'FAILURE')}]` }))
  const r = await list(gw, ['A1'])
  t.equal(r.text, `[${a}]`, 'the first element for an id wins')
  for (const body of ['', 'null', '[]', ' [ ] ']) {
    up.setHandler(() => ({ kind: 'raw', body }))
    const e = await list(gw, ['Z9'])
    t.equal(e.status, 200, JSON.stringify(body))
    t.equal(e.text, '[]')
    t.equal(e.headers['x-cache-hits'], '0')
  }
})

t.test('docs/errors.md §3 list-by-condition: upstream failures map to gateway errors, upstream answers pass through', async (t) => {
  const up = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => up.close())
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, UPSTREAM_TIMEOUT_MS: '1000', UPSTREAM_RETRIES: '2' }, { upstreamUrl: up.url })
  const cases: Array<[string, Handler, number, string, number]> = [
    ['401 → 502 MJGW_UPSTREAM_AUTH', () => ({ kind: 'raw', status: 401, body: '{}' }), 502, 'MJGW_UPSTREAM_AUTH', 1],
    ['403 → 502 MJGW_UPSTREAM_AUTH', () => ({ kind: 'raw', status: 403, body: '{}' }), 502, 'MJGW_UPSTREAM_AUTH', 1],
    ['500 → 502 MJGW_UPSTREAM_ERROR, not retried', () => ({ kind: 'raw', status: 500, body: 'x' }), 502, 'MJGW_UPSTREAM_ERROR', 1],
    ['not JSON → 502 MJGW_UPSTREAM_BAD_RESPONSE', () => ({ kind: 'raw', body: '<html>' }), 502, 'MJGW_UPSTREAM_BAD_RESPONSE', 1],
    ['an object, not an array → 502 MJGW_UPSTREAM_BAD_RESPONSE', () => ({ kind: 'raw', body: '{"id":"A1"}' }), 502, 'MJGW_UPSTREAM_BAD_RESPONSE', 1],
    ['a redirect → 502 MJGW_UPSTREAM_BAD_RESPONSE', () => ({ kind: 'raw', status: 301, body: '', headers: { location: '/x' } }), 502, 'MJGW_UPSTREAM_BAD_RESPONSE', 1],
    ['over the budget → 504 MJGW_UPSTREAM_TIMEOUT', () => ({ kind: 'hang' }), 504, 'MJGW_UPSTREAM_TIMEOUT', 1]
  ]
  for (const [name, script, status, code, calls] of cases) {
    t.test(name, async (t) => {
      up.setHandler(script)
      const before = up.requests.length
      isError(t, await list(gw, ['A1', 'B2']), status, code)
      t.equal(up.requests.length - before, calls, `${calls} upstream call(s)`)
    })
  }
  t.test('503 → 502 MJGW_UPSTREAM_ERROR after the retries (a query, not a submit: safe to retry)', async (t) => {
    const roomy = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, UPSTREAM_RETRIES: '2' }, { upstreamUrl: up.url })
    up.setHandler(() => ({ kind: 'raw', status: 503, body: '' }))
    const before = up.requests.length
    isError(t, await list(roomy, ['A1']), 502, 'MJGW_UPSTREAM_ERROR')
    t.equal(up.requests.length - before, 3, '1 + UPSTREAM_RETRIES calls')
  })
  t.test('a 4xx answer passes through with status, body and retry-after', async (t) => {
    up.setHandler(() => ({ kind: 'raw', status: 429, body: '{"description":"slow down"}', headers: { 'retry-after': '3' } }))
    const r = await list(gw, ['A1'])
    t.equal(r.status, 429)
    t.equal(r.text, '{"description":"slow down"}')
    t.equal(r.headers['retry-after'], '3')
    t.equal(r.headers['x-cache-hits'], undefined)
  })
})

t.test('docs/http-api.md §6 list-by-condition: ids all cached need no upstream, so an upstream outage does not touch them', async (t) => {
  const up = await upstream(t)
  up.tasks.set('A1', task('A1', 'SUCCESS'))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  await list(gw, ['A1'])
  up.setHandler(() => ({ kind: 'reset' }))
  const r = await list(gw, ['A1'])
  t.equal(r.status, 200)
  t.equal(r.headers['x-cache-hits'], '1')
  t.equal(r.text, `[${up.tasks.get('A1')}]`)
})

t.test('docs/metrics.md §3 list-by-condition counts one cache lookup per id: hit for cached terminal, miss for the rest', async (t) => {
  const up = await upstream(t)
  up.tasks.set('A1', task('A1', 'SUCCESS'))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  await list(gw, ['A1', 'B2', 'C3'])
  await list(gw, ['A1', 'B2'])
  const text = (await gw.request('GET', '/metrics')).text
  t.match(text, /^mj_gateway_cache_lookups_total\{result="hit"\} 1$/m)
  t.match(text, /^mj_gateway_cache_lookups_total\{result="miss"\} 4$/m)
  t.match(text, /^mj_gateway_http_requests_total\{method="POST",route="\/mj\/task\/list-by-condition",status_code="200"\} 2$/m)
})
