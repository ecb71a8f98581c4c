import t, { type Test } from 'tap'
import { SUBMIT_KINDS, OPEN_PASSTHROUGH_WARNING } from '../src/routes/passthrough.js'
import { startSimulatedUpstream, type SimulatedUpstream, type Handler } from '../src/demo/simulated-upstream.js'
import { startGateway, CLIENT_AUTH, CLIENT_TOKEN, SUBMIT_OK, UPSTREAM_KEY } from './helpers/gateway.js'
import { closedOrigin, type HttpResult } from './helpers/net.js'

/** as these tests were written: no rate limit unless a test sets one, info logs */
const PASSTHROUGH_ENV = { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'info' }

const GUARDED = { CLIENT_KEYS: `ci:${CLIENT_TOKEN}` }
const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']

/** an upstream that accepts every submit */
async function upstream(t: { teardown(fn: () => unknown): void }): Promise<SimulatedUpstream> {
  const up = await startSimulatedUpstream({ handler: () => ({ kind: 'raw', body: SUBMIT_OK }) })
  t.teardown(() => up.close())
  return up
}

function isError(t: Test, r: HttpResult, status: number, code: string): void {
  t.equal(r.status, status, `status ${status}: ${r.text.slice(0, 200)}`)
  const body = r.json() as Record<string, unknown>
  t.same(Object.keys(body).sort(), ERROR_KEYS, 'Fastify error shape')
  t.equal(body['statusCode'], status)
  t.equal(body['code'], code)
}

t.test('docs/http-api.md §4 every allowlisted submit route is forwarded to the same upstream path, answer byte for byte', async (t) => {
  const up = await upstream(t)
  const answer = '{"code":1, "description":"Submit success","properties":{},"result":"1730621826053455"}\n'
  up.setHandler(() => ({ kind: 'raw', body: answer, headers: { 'content-type': 'application/json;charset=UTF-8' } }))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  for (const kind of SUBMIT_KINDS) {
    const r = await gw.post(`/mj/submit/${kind}`, { prompt: `p-${kind}`, base64Array: ['data:image/png;base64,AAAA'] }, CLIENT_AUTH)
    t.equal(r.status, 200, kind)
    t.equal(r.text, answer, `${kind}: body byte for byte`)
    t.equal(r.headers['content-type'], 'application/json;charset=UTF-8', `${kind}: upstream content-type`)
    const got = up.requests.at(-1)
    t.equal(got?.method, 'POST')
    t.equal(got?.url, `/mj/submit/${kind}`)
    t.same(JSON.parse(got?.body.toString() ?? ''), { prompt: `p-${kind}`, base64Array: ['data:image/png;base64,AAAA'] })
    t.equal(got?.headers['content-type'], 'application/json')
  }
  t.equal(up.requests.length, SUBMIT_KINDS.length, 'one upstream call per submit')
})

t.test('docs/headers.md §10 the client query string is not forwarded: the upstream path is the allowlisted one', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const r = await gw.post('/mj/submit/imagine?x=/mj/task/list&url=http://evil', { prompt: 'a' }, CLIENT_AUTH)
  t.equal(r.status, 200)
  t.equal(up.requests[0]?.url, '/mj/submit/imagine')
})

const CLIENT_JUNK = {
  ...CLIENT_AUTH,
  'mj-api-secret': CLIENT_TOKEN,
  cookie: `session=${CLIENT_TOKEN}`,
  'x-api-key': CLIENT_TOKEN,
  'proxy-authorization': `Basic ${CLIENT_TOKEN}`,
  'x-forwarded-for': '203.0.113.9',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'http',
  forwarded: 'for=203.0.113.9',
  'x-real-ip': '203.0.113.9',
  'x-custom': 'client-only'
}

for (const style of ['bearer', 'mj-api-secret'] as const) {
  t.test(`docs/headers.md §10 upstream gets exactly one credential, the upstream key (UPSTREAM_AUTH_STYLE=${style}), and no client credential or x-forwarded-*`, async (t) => {
    const up = await upstream(t)
    const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, UPSTREAM_AUTH_STYLE: style }, { upstreamUrl: up.url })
    t.equal((await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_JUNK)).status, 200)
    t.equal((await gw.request('GET', '/mj/task/1730621826053455/image-seed', { headers: CLIENT_JUNK })).status, 200)
    t.equal(up.requests.length, 2)
    for (const got of up.requests) {
      const h = got.headers
      if (style === 'bearer') {
        t.equal(h.authorization, `Bearer ${UPSTREAM_KEY}`)
        t.notOk('mj-api-secret' in h, 'no mj-api-secret')
      } else {
        t.equal(h['mj-api-secret'], UPSTREAM_KEY)
        t.notOk('authorization' in h, 'no authorization')
      }
      for (const name of ['cookie', 'x-api-key', 'proxy-authorization', 'forwarded', 'x-real-ip', 'x-custom']) t.notOk(name in h, `no ${name}`)
      t.same(Object.keys(h).filter((k) => k.startsWith('x-forwarded')), [], 'no x-forwarded-*')
      t.notMatch(JSON.stringify(h), CLIENT_TOKEN, 'the client token appears nowhere')
    }
  })
}

t.test('docs/http-api.md §4 notifyHook is removed from submit bodies (the upstream would call any URL a client names)', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const body = {
    prompt: 'a cat',
    notifyHook: 'http://169.254.169.254/latest',
    NOTIFYHOOK: 'http://evil/upper',
    notifyhook: 'http://evil/lower',
    ['notifyHoo\u212A']: 'http://evil/kelvin-sign',
    state: 'keep me',
    base64Array: ['x'],
    nested: { notifyHook: 'not top-level, left alone' }
  }
  for (const kind of ['imagine', 'action', 'blend']) {
    t.equal((await gw.post(`/mj/submit/${kind}`, body, CLIENT_AUTH)).status, 200)
    const sent = JSON.parse(up.requests.at(-1)?.body.toString() ?? '') as Record<string, unknown>
    t.same(sent, { prompt: 'a cat', state: 'keep me', base64Array: ['x'], nested: { notifyHook: 'not top-level, left alone' } }, kind)
  }
})

t.test('docs/http-api.md §4 ALLOW_NOTIFY_HOOK=true keeps the client notifyHook', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, ALLOW_NOTIFY_HOOK: 'true' }, { upstreamUrl: up.url })
  t.equal((await gw.post('/mj/submit/imagine', { prompt: 'a', notifyHook: 'https://hooks.example/mj' }, CLIENT_AUTH)).status, 200)
  t.same(JSON.parse(up.requests[0]?.body.toString() ?? ''), { prompt: 'a', notifyHook: 'https://hooks.example/mj' })
})

t.test('docs/http-api.md §4 SUBMIT_MAX_BODY_BYTES: a larger submit body gets 413 in the error shape and never reaches upstream', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, SUBMIT_MAX_BODY_BYTES: '1024' }, { upstreamUrl: up.url })
  const big = JSON.stringify({ prompt: 'a', base64Array: ['A'.repeat(2000)] })
  isError(t, await gw.post('/mj/submit/blend', big, CLIENT_AUTH), 413, 'FST_ERR_CTP_BODY_TOO_LARGE')
  const chunked = await gw.request('POST', '/mj/submit/describe', {
    headers: { ...CLIENT_AUTH, 'content-type': 'application/json' },
    body: big,
    chunked: true
  })
  isError(t, chunked, 413, 'FST_ERR_CTP_BODY_TOO_LARGE')
  const fits = JSON.stringify({ prompt: 'a', base64Array: ['A'.repeat(900)] })
  t.equal((await gw.post('/mj/submit/blend', fits, CLIENT_AUTH)).status, 200, 'a body under the limit passes')
  t.equal(up.requests.length, 1, 'only the body under the limit reached upstream')
})

t.test('docs/http-api.md §4 SUBMIT_MAX_BODY_BYTES default (20 MiB): a 3 MB base64 blend body, past Fastify’s own 1 MiB default, is forwarded whole', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  const image = Buffer.alloc(2_300_000, 7).toString('base64')
  const r = await gw.post('/mj/submit/blend', { base64Array: [image, image.slice(0, 10)], dimensions: 'SQUARE' }, CLIENT_AUTH)
  t.equal(r.status, 200)
  const sent = JSON.parse(up.requests[0]?.body.toString() ?? '') as { base64Array: string[] }
  t.equal(sent.base64Array[0], image)
})

t.test('docs/http-api.md §4 a submit body that is not a JSON object is a 400 (or 415) and never reaches upstream', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  isError(t, await gw.post('/mj/submit/imagine', '[{"prompt":"a"}]', CLIENT_AUTH), 400, 'FST_ERR_VALIDATION')
  isError(t, await gw.post('/mj/submit/imagine', '"prompt"', CLIENT_AUTH), 400, 'FST_ERR_VALIDATION')
  isError(t, await gw.post('/mj/submit/imagine', 'null', CLIENT_AUTH), 400, 'FST_ERR_VALIDATION')
  isError(t, await gw.post('/mj/submit/imagine', '{"prompt":', CLIENT_AUTH), 400, 'FST_ERR_CTP_INVALID_JSON_BODY')
  isError(t, await gw.post('/mj/submit/imagine', '{"__proto__":{"x":1}}', CLIENT_AUTH), 400, 'FST_ERR_CTP_INVALID_JSON_BODY')
  isError(t, await gw.request('POST', '/mj/submit/imagine', { headers: CLIENT_AUTH }), 400, 'FST_ERR_VALIDATION')
  const text = await gw.request('POST', '/mj/submit/imagine', { headers: { ...CLIENT_AUTH, 'content-type': 'text/plain' }, body: 'prompt=a' })
  isError(t, text, 400, 'FST_ERR_VALIDATION')
  const form = await gw.request('POST', '/mj/submit/imagine', {
    headers: { ...CLIENT_AUTH, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'prompt=a'
  })
  isError(t, form, 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
  t.equal(up.requests.length, 0)
})

t.test('docs/http-api.md §3 retries never apply to submit: one upstream try on 503 and on a reset, while an image-seed GET is retried', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, UPSTREAM_RETRIES: '2' }, { upstreamUrl: up.url })
  up.setHandler(() => ({ kind: 'raw', status: 503, body: '{"error":"busy"}' }))
  isError(t, await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH), 502, 'MJGW_UPSTREAM_ERROR')
  t.equal(up.requests.length, 1, 'submit on 503: one try')
  up.setHandler(() => ({ kind: 'reset' }))
  isError(t, await gw.post('/mj/submit/action', { taskId: '1', customId: 'MJ::JOB::upsample::1::x' }, CLIENT_AUTH), 502, 'MJGW_UPSTREAM_UNREACHABLE')
  t.equal(up.requests.length, 2, 'submit on a reset: one try')
  up.setHandler(() => ({ kind: 'raw', status: 503, body: '{}' }))
  isError(t, await gw.request('GET', '/mj/task/1730621826053455/image-seed', { headers: CLIENT_AUTH }), 502, 'MJGW_UPSTREAM_ERROR')
  t.equal(up.requests.length, 5, 'image-seed: 1 + UPSTREAM_RETRIES tries')
})

t.test('docs/http-api.md §3 upstream answers pass through with their status: 4xx but 401/403, with body and retry-after', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  for (const status of [400, 404, 409, 422, 429]) {
    const body = `{"code":4,"description":"upstream says ${status}"}`
    up.setHandler(() => ({ kind: 'raw', status, body, headers: status === 429 ? { 'retry-after': '7' } : undefined }))
    const r = await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH)
    t.equal(r.status, status)
    t.equal(r.text, body)
    t.equal(r.headers['retry-after'], status === 429 ? '7' : undefined, 'retry-after passes through')
    const seed = await gw.request('GET', '/mj/task/17/image-seed', { headers: CLIENT_AUTH })
    t.equal(seed.status, status, `image-seed ${status}`)
    t.equal(seed.text, body)
  }
  up.setHandler(() => ({ kind: 'raw', status: 200, body: '', headers: { 'content-type': '' } }))
  const empty = await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH)
  t.equal(empty.status, 200, 'a 200 without content-type passes through')
  t.match(empty.headers['content-type'], /^application\/json/, 'and is labelled JSON')
})

t.test('docs/errors.md §3 upstream failures on pass-through routes map to the gateway error codes', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, UPSTREAM_TIMEOUT_MS: '1000', UPSTREAM_RETRIES: '0', UPSTREAM_MAX_BODY_BYTES: '1000' }, { upstreamUrl: up.url })
  const cases: Array<[string, Handler, number, string]> = [
    ['upstream 401 → 502 MJGW_UPSTREAM_AUTH', () => ({ kind: 'raw', status: 401, body: '{"error":"bad key"}' }), 502, 'MJGW_UPSTREAM_AUTH'],
    ['upstream 403 → 502 MJGW_UPSTREAM_AUTH', () => ({ kind: 'raw', status: 403, body: '{}' }), 502, 'MJGW_UPSTREAM_AUTH'],
    ['upstream 500 → 502 MJGW_UPSTREAM_ERROR', () => ({ kind: 'raw', status: 500, body: 'oops' }), 502, 'MJGW_UPSTREAM_ERROR'],
    ['upstream 302 → 502 MJGW_UPSTREAM_BAD_RESPONSE', () => ({ kind: 'raw', status: 302, body: '', headers: { location: 'http://elsewhere/' } }), 502, 'MJGW_UPSTREAM_BAD_RESPONSE'],
    ['upstream body (chunked) over UPSTREAM_MAX_BODY_BYTES → 502 MJGW_UPSTREAM_BAD_RESPONSE', () => ({ kind: 'huge', bytes: 5000, chunked: true }), 502, 'MJGW_UPSTREAM_BAD_RESPONSE'],
    ['upstream over the time budget → 504 MJGW_UPSTREAM_TIMEOUT', () => ({ kind: 'hang' }), 504, 'MJGW_UPSTREAM_TIMEOUT']
  ]
  for (const [name, script, status, code] of cases) {
    t.test(name, async (t) => {
      up.setHandler(script)
      isError(t, await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH), status, code)
      isError(t, await gw.request('GET', '/mj/task/17/image-seed', { headers: CLIENT_AUTH }), status, code)
    })
  }
})

t.test('docs/errors.md §3 upstream unreachable on a submit → 502 MJGW_UPSTREAM_UNREACHABLE', async (t) => {
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, UPSTREAM_RETRIES: '0' }, { upstreamUrl: await closedOrigin() })
  isError(t, await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH), 502, 'MJGW_UPSTREAM_UNREACHABLE')
})

t.test('docs/http-api.md §5 GET /mj/task/:id/image-seed: same id rule as fetch (400, no upstream call), valid ids forwarded', async (t) => {
  const up = await upstream(t)
  const seed = '{"code":1,"description":"success","result":"3372291804"}'
  up.setHandler(() => ({ kind: 'raw', body: seed }))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  for (const bad of ['a.b', 'a%20b', 'x'.repeat(65), '%2e%2e', 'a%2Fb', '..%2F..%2Ftask%2Flist', '%252e%252e']) {
    const r = await gw.request('GET', `/mj/task/${bad}/image-seed`, { headers: CLIENT_AUTH })
    t.equal(r.status, 400, `${bad} → 400`)
    t.match((r.json() as { code: string }).code, /^(FST_ERR_VALIDATION|MJGW_BAD_TASK_ID)$/)
  }
  t.equal(up.requests.length, 0, 'no bad id reached upstream')
  const id = 'Ab_-9'.repeat(12) + 'abcd'
  const r = await gw.request('GET', `/mj/task/${id}/image-seed`, { headers: CLIENT_AUTH })
  t.equal(r.status, 200)
  t.equal(r.text, seed)
  t.equal(up.requests[0]?.method, 'GET')
  t.equal(up.requests[0]?.url, `/mj/task/${id}/image-seed`)
})

// Every request here must end at the gateway: 404 (no such route) or 400 (an id that fails the pattern).
const UNLISTED: Array<[string, string]> = [
  ['GET', '/mj/task/list'],
  ['POST', '/mj/task/list'],
  ['HEAD', '/mj/task/list'],
  ['GET', '/mj/task/list?page=1'],
  ['GET', '/mj/task/list/'],
  ['GET', '/mj/task//list'],
  ['GET', '/mj/task/l%69st'],
  ['GET', '/mj/task/%6C%69%73%74'],
  ['GET', '/mj/TASK/list'],
  ['GET', '/MJ/TASK/LIST'],
  ['GET', '/mj/task/queue'],
  ['GET', '/mj/account/list'],
  ['POST', '/mj/account/list'],
  ['POST', '/mj/submit/swap_face'],
  ['POST', '/mj/submit/Imagine'],
  ['POST', '/mj/submit/IMAGINE'],
  ['POST', '/MJ/SUBMIT/IMAGINE'],
  ['POST', '/mj/Submit/imagine'],
  ['POST', '/mj/submit//imagine'],
  ['POST', '/mj/submit/imagine/'],
  ['POST', '/mj/submit/imagine%2F..%2F..%2Ftask%2Flist'],
  ['POST', '/mj/submit/imagine%252F..%252F..%252Ftask%252Flist'],
  ['POST', '/mj/submit/%2e%2e/%2e%2e/task/list'],
  ['POST', '/mj/submit/../task/list'],
  ['POST', '/mj/submit/imagine/../../task/list'],
  ['POST', '/mj/submit/imagine%00'],
  ['POST', '/mj/submit/imagine;x'],
  ['POST', '/mj/submit/imagine%3Bx'],
  ['POST', '/mj/submit/imagine.json()'],
  ['POST', '/mj/submit/'],
  ['POST', '/mj/submit'],
  ['POST', '/mj/task/list-by-condition/'],
  ['POST', '/mj/task/LIST-BY-CONDITION'],
  ['GET', '/mj/task/list-by-condition'],
  ['GET', '/mj/submit/imagine'],
  ['PUT', '/mj/submit/imagine'],
  ['DELETE', '/mj/task/1730621826053455/fetch'],
  ['GET', '/mj/task/1730621826053455/image-seed/'],
  ['GET', '/mj/task/1730621826053455/IMAGE-SEED'],
  ['GET', '/mj/task/..%2Flist/image-seed'],
  ['GET', '/mj/task/%2E%2E%2Flist%3F/image-seed'],
  ['GET', '/mj/task/list%2F..%2Flist/image-seed'],
  ['GET', '/mj/task/%252e%252e%252flist/image-seed'],
  ['GET', '/mj/task/../task/list'],
  ['GET', '/mj/task/%2e%2e/task/list'],
  ['GET', '/mj/./task/list'],
  ['GET', '/mj/task/list%23'],
  ['GET', '/mj/task/list%3Fx']
]

t.test('docs/http-api.md §9 everything else under /mj/* is 404 — GET /mj/task/list above all — whatever the encoding, case or dot-segment trick', async (t) => {
  const up = await upstream(t)
  up.setHandler(() => ({ kind: 'raw', body: '[{"id":"someone-elses-task"}]' }))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, PASSTHROUGH: 'on' }, { upstreamUrl: up.url })
  for (const [method, path] of UNLISTED) {
    const isPost = method === 'POST' || method === 'PUT'
    const r = await gw.request(method, path, {
      headers: { ...CLIENT_AUTH, ...(isPost ? { 'content-type': 'application/json' } : {}) },
      ...(isPost ? { body: '{"prompt":"a","ids":["1"]}' } : {})
    })
    t.ok(r.status === 404 || r.status === 400, `${method} ${path} → ${r.status}`)
    t.notMatch(r.text, 'someone-elses-task', `${method} ${path}: no upstream body`)
    if (method !== 'HEAD') t.match((r.json() as { code: string }).code, /^(MJGW_NOT_FOUND|FST_ERR_VALIDATION|MJGW_BAD_TASK_ID)$/)
  }
  t.same(up.requests.map((r) => `${r.method} ${r.url}`), [], 'not one of them reached upstream')
})

t.test('docs/http-api.md §3 PASSTHROUGH=auto without client tokens: the pass-through routes are off (404), fetch still works', async (t) => {
  const up = await upstream(t)
  up.setHandler(() => ({ kind: 'raw', body: '{"id":"17","status":"IN_PROGRESS"}' }))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, PASSTHROUGH: 'auto' }, { upstreamUrl: up.url })
  isError(t, await gw.post('/mj/submit/imagine', { prompt: 'a' }), 404, 'MJGW_NOT_FOUND')
  isError(t, await gw.post('/mj/task/list-by-condition', { ids: ['17'] }), 404, 'MJGW_NOT_FOUND')
  isError(t, await gw.request('GET', '/mj/task/17/image-seed'), 404, 'MJGW_NOT_FOUND')
  t.same(up.requests, [], 'nothing reached upstream')
  t.equal((await gw.request('GET', '/mj/task/17/fetch')).status, 200, 'fetch is not a pass-through route')
  t.notMatch(gw.logs(), 'PASSTHROUGH=on', 'no open-gateway warning')
})

t.test('docs/http-api.md §3 PASSTHROUGH=auto with client tokens: the pass-through routes are on, guarded by the client tokens of the /mj scope', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, PASSTHROUGH: 'auto' }, { upstreamUrl: up.url })
  const r = await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH)
  t.equal(r.status, 200)
  t.equal(r.text, SUBMIT_OK)
  t.equal((await gw.request('GET', '/mj/task/17/image-seed', { headers: CLIENT_AUTH })).status, 200)
  t.equal(up.requests.length, 2)
  t.notMatch(gw.logs(), 'PASSTHROUGH=on', 'guarded: no open-gateway warning')
})

t.test('docs/http-api.md §3 PASSTHROUGH=on without client tokens: the routes are on and start-up warns loudly', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, PASSTHROUGH: 'on' }, { upstreamUrl: up.url })
  const warning = gw
    .logs()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .find((l) => l.msg === OPEN_PASSTHROUGH_WARNING)
  t.ok(warning, 'the warning is logged at start-up, before any request')
  t.equal(warning?.level, 40, 'at warn level')
  t.match(OPEN_PASSTHROUGH_WARNING, /anyone .* spend the upstream key/)
  t.equal((await gw.post('/mj/submit/imagine', { prompt: 'a' })).status, 200)
})

t.test('docs/http-api.md §3 PASSTHROUGH=on with client tokens: no warning', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, PASSTHROUGH: 'on' }, { upstreamUrl: up.url })
  t.equal((await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH)).status, 200)
  t.notMatch(gw.logs(), 'PASSTHROUGH=on')
})

t.test('docs/http-api.md §3 PASSTHROUGH=off: never, even with client tokens (404)', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, PASSTHROUGH: 'off' }, { upstreamUrl: up.url })
  for (const kind of SUBMIT_KINDS) isError(t, await gw.post(`/mj/submit/${kind}`, { prompt: 'a' }, CLIENT_AUTH), 404, 'MJGW_NOT_FOUND')
  isError(t, await gw.post('/mj/task/list-by-condition', { ids: ['17'] }, CLIENT_AUTH), 404, 'MJGW_NOT_FOUND')
  isError(t, await gw.request('GET', '/mj/task/17/image-seed', { headers: CLIENT_AUTH }), 404, 'MJGW_NOT_FOUND')
  t.same(up.requests, [])
})

t.test('docs/access-control.md §8 no error, log line or response of the pass-through routes contains the upstream key or a client token', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED, LOG_LEVEL: 'trace', UPSTREAM_RETRIES: '0', UPSTREAM_TIMEOUT_MS: '300' }, { upstreamUrl: up.url })
  const seen: string[] = []
  const scripts: Handler[] = [
    () => ({ kind: 'raw', body: SUBMIT_OK }),
    () => ({ kind: 'raw', status: 401, body: '{"error":"invalid key"}' }),
    () => ({ kind: 'raw', status: 500, body: 'boom' }),
    () => ({ kind: 'raw', status: 400, body: '{"description":"bad prompt"}' }),
    () => ({ kind: 'reset' }),
    () => ({ kind: 'hang' })
  ]
  for (const script of scripts) {
    up.setHandler(script)
    seen.push((await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_JUNK)).text)
    seen.push((await gw.request('GET', '/mj/task/17/image-seed', { headers: CLIENT_JUNK })).text)
    seen.push((await gw.post('/mj/task/list-by-condition', { ids: ['17'] }, CLIENT_JUNK)).text)
  }
  seen.push((await gw.request('GET', '/metrics')).text)
  const everything = seen.join('\n') + gw.logs()
  t.ok(gw.logs().length > 0, 'there are logs to check')
  t.notMatch(everything, UPSTREAM_KEY, 'no upstream key')
  t.notMatch(everything, CLIENT_TOKEN, 'no client token')
})

t.test('docs/metrics.md §8 http metrics for the pass-through routes are labelled with the route pattern, never the raw URL', async (t) => {
  const up = await upstream(t)
  up.setHandler((req) => (req.url.startsWith('/mj/task/list') ? { kind: 'raw', body: '[]' } : { kind: 'raw', body: SUBMIT_OK }))
  const gw = await startGateway(t, { ...PASSTHROUGH_ENV, ...GUARDED }, { upstreamUrl: up.url })
  await gw.post('/mj/submit/imagine', { prompt: 'a' }, CLIENT_AUTH)
  await gw.post('/mj/submit/imagine', { prompt: 'b' }, CLIENT_AUTH)
  await gw.post('/mj/submit/upload-discord-images', { base64Array: [] }, CLIENT_AUTH)
  await gw.request('GET', '/mj/task/1730621826053455/image-seed', { headers: CLIENT_AUTH })
  await gw.request('GET', '/mj/task/bad.id/image-seed', { headers: CLIENT_AUTH })
  await gw.post('/mj/task/list-by-condition', { ids: ['1730621826053777'] }, CLIENT_AUTH)
  await gw.post('/mj/task/list-by-condition', { ids: [] }, CLIENT_AUTH)
  const text = (await gw.request('GET', '/metrics')).text
  const series = (route: string, method: string, status: number): RegExp =>
    new RegExp(`^mj_gateway_http_requests_total\\{method="${method}",route="${route.replace(/[/:]/g, '\\$&')}",status_code="${status}"\\} (\\d+)$`, 'm')
  t.match(text, series('/mj/submit/imagine', 'POST', 200))
  t.equal(series('/mj/submit/imagine', 'POST', 200).exec(text)?.[1], '2')
  t.match(text, series('/mj/submit/upload-discord-images', 'POST', 200))
  t.match(text, series('/mj/task/:id/image-seed', 'GET', 200))
  t.match(text, series('/mj/task/:id/image-seed', 'GET', 400))
  t.match(text, series('/mj/task/list-by-condition', 'POST', 200))
  t.match(text, series('/mj/task/list-by-condition', 'POST', 400))
  t.match(text, /^mj_gateway_http_request_duration_seconds_count\{method="POST",route="\/mj\/submit\/imagine",status_code="200"\} 2$/m)
  t.notMatch(text, '1730621826053455', 'no task id in any label')
  t.notMatch(text, '1730621826053777', 'no task id in any label')
  t.match(text, /^mj_gateway_upstream_requests_total\{outcome="ok"\} 5$/m, 'one upstream attempt per forwarded call')
})
