/**
 * docs/compatibility.md: what the clients people run send — numeric ids in list-by-condition, the newer submit
 * routes, PASSTHROUGH_ROUTES, and the mode prefixes /mj-fast, /mj-relax, /mj-turbo over one task cache.
 */
import t, { type Test } from 'tap'
import { ConfigError, describeConfig, loadConfig } from '../src/config.js'
import { DEFAULT_PASSTHROUGH_ROUTES } from '../src/routes/passthrough-table.js'
import { startSimulatedUpstream, taskBody, type SimulatedUpstream, type RecordedRequest } from '../src/demo/simulated-upstream.js'
import { startGateway, CLIENT_AUTH, CLIENT_TOKEN, SUBMIT_OK, UPSTREAM_KEY, type Gateway } from './helpers/gateway.js'
import { type HttpResult } from './helpers/net.js'
import { startRedisServer } from './helpers/redis-server.js'

/** as these tests were written: no rate limit unless a test sets one, info logs */
const PASSTHROUGH_ENV = { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'info' }

const GUARDED = { CLIENT_KEYS: `vue:${CLIENT_TOKEN}` }
const LIST = '/mj/task/list-by-condition'
const BIG_ID = '1730621826053455'

/** An upstream that knows tasks by id under any mode prefix: fetch, list-by-condition; submits answer SUBMIT_OK. */
async function upstream(t: Test, tasks: Record<string, string>): Promise<SimulatedUpstream> {
  const body = (id: string): string => JSON.stringify(taskBody(id, tasks[id] as string))
  const up = await startSimulatedUpstream({
    handler: (req: RecordedRequest) => {
      const path = req.url.replace(/^\/mj-(fast|relax|turbo)/, '')
      const fetch = /^\/mj\/task\/([^/]+)\/fetch$/.exec(path)?.[1]
      if (fetch !== undefined) return { kind: 'raw', body: tasks[fetch] === undefined ? 'null' : body(fetch) }
      if (path === LIST) {
        const { ids } = JSON.parse(req.body.toString()) as { ids: string[] }
        return { kind: 'raw', body: `[${ids.filter((id) => tasks[id] !== undefined).map(body).join(',')}]` }
      }
      if (path.endsWith('/image-seed')) return { kind: 'raw', body: '{"code":1,"result":"42"}' }
      return { kind: 'raw', body: SUBMIT_OK }
    }
  })
  t.teardown(() => up.close())
  return up
}

const ids = (r: HttpResult): string[] => (r.json() as Array<{ id: string }>).map((x) => x.id)
const listAsked = (up: SimulatedUpstream): unknown[] => up.requests.filter((r) => r.url.endsWith(LIST)).map((r) => JSON.parse(r.body.toString()) as unknown)

t.test('list-by-condition takes ids as integers too: a number is the id of its decimal string', async (t) => {
  const up = await upstream(t, { [BIG_ID]: 'SUCCESS', B2: 'IN_PROGRESS', '17': 'FAILURE' })
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  // raw JSON text, so the numbers are numbers on the wire (as the Vue frontend's gallery sends them)
  const first = await gw.post(LIST, `{"ids":[${BIG_ID},"B2",17,"${BIG_ID}",0]}`, CLIENT_AUTH)
  t.equal(first.status, 200, first.text)
  t.same(ids(first), [BIG_ID, 'B2', '17'], 'requested order, a repeated id (number or string) once, unknown left out')
  t.same(listAsked(up), [{ ids: [BIG_ID, 'B2', '17', '0'] }], 'upstream is asked with strings, once each')
  const again = await gw.post(LIST, `{"ids":[${BIG_ID},17]}`, CLIENT_AUTH)
  t.equal(again.headers['x-cache-hits'], '2', 'the terminal tasks are now cached under their string ids')
  t.equal(listAsked(up).length, 1, 'no second upstream call')
  const fetched = await gw.request('GET', `/mj/task/${BIG_ID}/fetch`, { headers: CLIENT_AUTH })
  t.equal(fetched.headers['x-cache'], 'HIT', 'and fetch finds them')

  for (const bad of ['1.5', '-17', String(2 ** 53), '1e21', 'true', '[1]', '{"id":1}']) {
    const r = await gw.post(LIST, `{"ids":["B2",${bad}]}`, CLIENT_AUTH)
    t.equal(r.status, 400, `${bad} is not an id`)
    t.match(r.json(), { statusCode: 400, code: 'FST_ERR_VALIDATION', message: /ids\/1/ })
  }
  const hundredAndOne = Array.from({ length: 101 }, (_, i) => i).join(',')
  t.equal((await gw.post(LIST, `{"ids":[${hundredAndOne}]}`, CLIENT_AUTH)).status, 400, 'still at most 100 ids')
  t.equal(listAsked(up).length, 1, 'no bad list reached upstream')
})

t.test('the pass-through list holds submit/video, submit/edits and insight-face/swap', async (t) => {
  const up = await upstream(t, {})
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  for (const path of ['/mj/submit/video', '/mj/submit/edits', '/mj/insight-face/swap']) {
    const r = await gw.post(path, { prompt: 'p', taskId: BIG_ID, notifyHook: 'http://evil.example/hook' }, CLIENT_AUTH)
    t.equal(r.status, 200, path)
    t.equal(r.text, SUBMIT_OK)
    const got = up.requests.at(-1) as RecordedRequest
    t.equal(got.url, path, `${path}: the same upstream path`)
    t.equal(got.headers['authorization'], `Bearer ${UPSTREAM_KEY}`, `${path}: the gateway's key`)
    t.same(JSON.parse(got.body.toString()), { prompt: 'p', taskId: BIG_ID }, `${path}: notifyHook removed`)
  }
  t.equal((await gw.post('/mj/submit/video', { prompt: 'p' })).status, 401, 'guarded like the others')
})

t.test('PASSTHROUGH_ROUTES replaces the list: listed paths are forwarded, the rest are 404', async (t) => {
  const up = await upstream(t, { S1: 'SUCCESS' })
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, PASSTHROUGH_ROUTES: ' /mj/submit/imagine , /mj/submit/brand-new,/mj/task/{id}/image-seed,/mj/submit/imagine' }, { upstreamUrl: up.url })
  t.equal((await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH)).status, 200)
  t.equal((await gw.post('/mj/submit/brand-new', { prompt: 'a' }, CLIENT_AUTH)).status, 200, 'a path the gateway has never heard of')
  const seed = await gw.request('GET', '/mj/task/S1/image-seed', { headers: CLIENT_AUTH })
  t.equal(seed.status, 200, 'a path with {id} is a GET of that task')
  t.equal((await gw.request('GET', '/mj/task/bad.id/image-seed', { headers: CLIENT_AUTH })).status, 400, 'its id checked like fetch')
  t.same(
    up.requests.map((r) => `${r.method} ${r.url}`),
    ['POST /mj/submit/imagine', 'POST /mj/submit/brand-new', 'GET /mj/task/S1/image-seed']
  )
  for (const path of ['/mj/submit/blend', '/mj/submit/video', LIST]) {
    const r = await gw.post(path, { ids: ['S1'] }, CLIENT_AUTH)
    t.equal(r.status, 404, `${path}: not listed`)
    t.match(r.json(), { code: 'MJGW_NOT_FOUND' })
  }
  t.equal((await gw.request('GET', '/mj/task/S1/fetch', { headers: CLIENT_AUTH })).status, 200, 'fetch is always served')
  t.equal(up.requests.length, 4)
})

t.test('PASSTHROUGH_ROUTES is checked at start-up: one line naming the variable', async (t) => {
  const load = (value: string) => () => loadConfig({ UPSTREAM_API_KEY: 'k', PASSTHROUGH_ROUTES: value })
  for (const [value, why] of [
    ['submit/imagine', /PASSTHROUGH_ROUTES: not a path under \/mj\//],
    ['/api/submit', /not a path under \/mj\//],
    ['/mj/', /not a path/],
    ['/mj/submit/a b', /not a path/],
    ['/mj/submit/../task/list', /not a path/],
    ['/mj/submit/%2e', /not a path/],
    ['/mj/task/:id/:id', /at most one :id/],
    ['/mj/task/:id/fetch', /always served/],
    ['/mj/task/{id}/fetch', /always served/],
    ['/mj/task/list', /never forwarded/],
    [' , ', /no path given/]
  ] as const) {
    t.throws(load(value), ConfigError, value)
    try {
      load(value)()
    } catch (err) {
      t.match((err as Error).message, why, value)
      t.notMatch((err as Error).message, /\n/, 'one line')
    }
  }
  t.same(loadConfig({ UPSTREAM_API_KEY: 'k' }).passthroughRoutes, DEFAULT_PASSTHROUGH_ROUTES, 'unset: the default list')
  t.same(describeConfig(loadConfig({ UPSTREAM_API_KEY: 'k', PASSTHROUGH_ROUTES: '/mj/submit/imagine' }))['PASSTHROUGH_ROUTES'], ['/mj/submit/imagine'])
})

t.test('mode prefixes: every /mj route is served under /mj-fast, /mj-relax and /mj-turbo, forwarded under the prefix, over one cache', async (t) => {
  const up = await upstream(t, { M1: 'SUCCESS', M2: 'IN_PROGRESS', M3: 'CANCEL' })
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const first = await gw.request('GET', '/mj-fast/mj/task/M1/fetch', { headers: CLIENT_AUTH })
  t.equal(first.status, 200)
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(up.requests[0]?.url, '/mj-fast/mj/task/M1/fetch', 'asked upstream under the same prefix')
  for (const prefix of ['', '/mj-relax', '/mj-turbo', '/mj-fast']) {
    const r = await gw.request('GET', `${prefix}/mj/task/M1/fetch`, { headers: CLIENT_AUTH })
    t.equal(r.headers['x-cache'], 'HIT', `${prefix || '/mj'}: one id is one task`)
    t.equal(r.text, first.text, 'the same bytes')
  }
  t.equal(up.requests.length, 1)

  const submit = await gw.post('/mj-turbo/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH)
  t.equal(submit.status, 200)
  t.equal(up.requests.at(-1)?.url, '/mj-turbo/mj/submit/imagine')
  t.equal((await gw.request('GET', '/mj-relax/mj/task/M2/image-seed', { headers: CLIENT_AUTH })).status, 200)
  t.equal(up.requests.at(-1)?.url, '/mj-relax/mj/task/M2/image-seed')
  const listed = await gw.post(`/mj-fast${LIST}`, { ids: ['M1', 'M3'] }, CLIENT_AUTH)
  t.same(ids(listed), ['M1', 'M3'])
  t.equal(listed.headers['x-cache-hits'], '1', 'M1 from the shared cache')
  t.equal(up.requests.at(-1)?.url, `/mj-fast${LIST}`)
  t.same(JSON.parse(up.requests.at(-1)?.body.toString() ?? ''), { ids: ['M3'] })
  t.equal((await gw.request('GET', '/mj/task/M3/fetch', { headers: CLIENT_AUTH })).headers['x-cache'], 'HIT', 'stored by the prefixed list')

  const calls = up.requests.length
  t.equal((await gw.request('GET', '/mj-fast/mj/task/M1/fetch')).status, 401, 'a prefixed route is guarded the same')
  t.equal((await gw.request('GET', '/mj-relax/mj/task/bad.id/fetch', { headers: CLIENT_AUTH })).status, 400, 'and checked the same')
  t.equal((await gw.request('GET', '/mj-turbo/mj/task/list', { headers: CLIENT_AUTH })).status, 404, '/mj/task/list is 404 under a prefix too')
  t.equal((await gw.request('GET', '/mj-slow/mj/task/M1/fetch', { headers: CLIENT_AUTH })).status, 404, 'only the three modes')
  t.equal((await gw.request('GET', '/mj-fast/mj-fast/mj/task/M1/fetch', { headers: CLIENT_AUTH })).status, 404, 'one prefix at most')
  t.equal(up.requests.length, calls, 'none of these reached upstream')

  const m = (await gw.request('GET', '/metrics')).text
  t.match(m, /mj_gateway_http_requests_total\{method="GET",route="\/mj-fast\/mj\/task\/:id\/fetch",status_code="200"\} 2/, 'counted under the prefixed route pattern')
})

t.test('mode prefixes: a fetch under one prefix and one under another share one upstream call (single-flight by id)', async (t) => {
  const up = await upstream(t, { C1: 'SUCCESS' })
  up.setHandler(() => ({ kind: 'json', body: taskBody('C1', 'SUCCESS'), delayMs: 300 }))
  const gw: Gateway = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const answers = await Promise.all(['', '/mj-fast', '/mj-relax', '/mj-turbo'].map((p) => gw.request('GET', `${p}/mj/task/C1/fetch`, { headers: CLIENT_AUTH })))
  t.same(answers.map((a) => a.status), [200, 200, 200, 200])
  t.same(answers.map((a) => a.headers['x-cache']).sort(), ['COALESCED', 'COALESCED', 'COALESCED', 'MISS'])
  t.equal(up.requests.length, 1)
})

t.test('mode prefixes: the Redis tier is shared across prefixes and replicas', async (t) => {
  const redis = await startRedisServer(t)
  const up = await upstream(t, { R1: 'SUCCESS' })
  const env = { UPSTREAM_BASE_URL: up.url, UPSTREAM_API_KEY: UPSTREAM_KEY, REDIS_URL: redis.url }
  const a = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  const b = await startGateway(t, { LOG_LEVEL: 'info', ...env })
  await a.waitRedis('up')
  await b.waitRedis('up')
  const first = await a.get('/mj-fast/mj/task/R1/fetch')
  t.equal(first.headers['x-cache'], 'MISS')
  const second = await b.get('/mj-relax/mj/task/R1/fetch')
  t.equal(second.status, 200)
  t.equal(second.headers['x-cache'], 'HIT', 'another replica, another prefix: the shared tier answers')
  t.equal(second.text, first.text)
  t.equal(await b.metric('mj_gateway_cache_lookups_total{result="hit_shared"}'), 1)
  t.equal(up.requests.length, 1)
})
