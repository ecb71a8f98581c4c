/**
 * GET /mj/task/:id/fetch: the id rule (docs/http-api.md §1) and every row of the error tables (docs/errors.md §2, §3),
 * through real sockets with the fake upstream behind the gateway.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { taskBody } from '../src/demo/simulated-upstream.js'
import { UPSTREAM_KEY, rawGet, startGateway } from './helpers/gateway.js'

const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']

t.test('docs/http-api.md §2 an id failing ^[A-Za-z0-9_-]{1,64}$ is answered 400 and never reaches upstream', async (t) => {
  const gw = await startGateway(t)
  const bad = [
    'a'.repeat(65),
    'a'.repeat(1025),
    'a'.repeat(5000),
    '.',
    '..',
    '',
    'a%2Fb',
    '%2F',
    '%2e%2e',
    '%C3%A9',
    '%E4%BB%BB%E5%8A%A1',
    '%F0%9F%90%B7',
    '%zz',
    '%',
    'a%20b',
    '%00',
    'a.b',
    'a~b',
    'a;b',
    'a:b',
    'a+b',
    "a'b",
    'a%22b'
  ]
  for (const id of bad) {
    const res = await rawGet(gw.port, `/mj/task/${id}/fetch`)
    const label = id.length > 20 ? `${id.length} chars` : JSON.stringify(id)
    t.equal(res.status, 400, label)
    const body = JSON.parse(res.body) as Record<string, unknown>
    t.same(Object.keys(body).sort(), ERROR_KEYS, `${label}: Fastify's error shape`)
    t.match(body, { statusCode: 400, error: 'Bad Request', code: /^(FST_ERR_VALIDATION|MJGW_BAD_TASK_ID)$/ }, label)
  }
  t.equal(gw.upstream.calls, 0, 'nothing reached upstream')

  const good = ['a', 'A'.repeat(64), '1730621826053', 'task_ID-0-_', '__proto__', 'constructor', 'hasOwnProperty']
  for (const id of good) {
    const res = await gw.fetchTask(id)
    t.equal(res.status, 200, `${id.length > 20 ? `${id.length} chars` : id} is a valid id`)
    t.match(res.json(), { id })
    t.equal((await gw.fetchTask(id)).headers['x-cache'], 'HIT', 'and cached under its own key')
  }
  t.equal(gw.upstream.calls, good.length)
})

t.test('docs/errors.md §3 upstream answers 400, 404, 429 or another 4xx but 401/403: the same status, the upstream body passed through', async (t) => {
  const gw = await startGateway(t)
  const cases = [
    { status: 400, body: '{"code":400,"description":"bad id"}', type: 'application/json' },
    { status: 404, body: '{"code":404,"description":"not found"}', type: 'application/json;charset=UTF-8' },
    { status: 409, body: 'conflict', type: 'text/plain' },
    { status: 418, body: '{"teapot":true}', type: 'application/json' },
    { status: 429, body: '{"error":"too many"}', type: 'application/json', retryAfter: '17' }
  ]
  for (const c of cases) {
    gw.upstream.reset()
    gw.upstream.enqueue({
      kind: 'raw',
      status: c.status,
      body: c.body,
      headers: { 'content-type': c.type, 'set-cookie': 'upstream=1', 'x-upstream-internal': 'yes', ...(c.retryAfter ? { 'retry-after': c.retryAfter } : {}) }
    })
    const res = await gw.fetchTask('T1')
    t.equal(res.status, c.status, `upstream ${c.status}`)
    t.equal(res.body, c.body, 'byte for byte')
    t.equal(res.headers['content-type'], c.type)
    t.equal(res.headers['retry-after'], c.retryAfter, 'retry-after passes with a 429')
    t.notOk(res.headers['set-cookie'] ?? res.headers['x-upstream-internal'], 'no other upstream header passes')
    t.equal(gw.upstream.calls, 1, 'not retried')
    t.notOk(res.headers['x-cache'], 'an answer is not a cached task')
  }
})

t.test('docs/errors.md §3 a 4xx answer without a content-type goes out as JSON (the upstream speaks JSON)', async (t) => {
  const bare = createServer((_req, res) => {
    res.writeHead(404)
    res.end('{"code":404}')
  })
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    bare.closeAllConnections()
    return new Promise<void>((resolve) => bare.close(() => resolve()))
  })
  const gw = await startGateway(t, {}, { upstreamUrl: `http://127.0.0.1:${(bare.address() as AddressInfo).port}` })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 404)
  t.equal(res.body, '{"code":404}')
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
})

t.test('docs/errors.md §3 upstream 200 with an empty body or null → 404 MJGW_TASK_NOT_FOUND', async (t) => {
  const gw = await startGateway(t)
  for (const body of ['', 'null', ' null\n']) {
    gw.upstream.enqueue({ kind: 'raw', body })
    const res = await gw.fetchTask('T1')
    t.equal(res.status, 404, JSON.stringify(body))
    t.same(res.json(), { statusCode: 404, code: 'MJGW_TASK_NOT_FOUND', error: 'Not Found', message: 'task T1 not found upstream' })
  }
  t.equal(gw.upstream.calls, 3)
})

t.test('docs/errors.md §3 upstream 401 or 403 (the gateway key is bad) → 502 MJGW_UPSTREAM_AUTH, not retried', async (t) => {
  const gw = await startGateway(t)
  for (const status of [401, 403]) {
    gw.upstream.reset()
    gw.upstream.enqueue({ kind: 'json', status, body: { error: 'invalid key', key: UPSTREAM_KEY } })
    const res = await gw.fetchTask('T1')
    t.equal(res.status, 502)
    t.match(res.json(), { statusCode: 502, code: 'MJGW_UPSTREAM_AUTH', error: 'Bad Gateway', message: new RegExp(String(status)) })
    t.notMatch(res.body, UPSTREAM_KEY, 'the upstream body (which echoes the key) is not passed on')
    t.equal(gw.upstream.calls, 1)
  }
})

t.test('docs/errors.md §3 upstream 5xx → 502 MJGW_UPSTREAM_ERROR', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_RETRIES: '0' })
  for (const status of [500, 501, 502, 503, 504, 599]) {
    gw.upstream.enqueue({ kind: 'raw', status, body: `{"error":"${status}","key":"${UPSTREAM_KEY}"}` })
    const res = await gw.fetchTask('T1')
    t.equal(res.status, 502, `upstream ${status}`)
    t.match(res.json(), { code: 'MJGW_UPSTREAM_ERROR', message: `upstream failed with HTTP ${status}` })
    t.notMatch(res.body, UPSTREAM_KEY)
  }
})

t.test('docs/errors.md §3 upstream 200 that is not a JSON object → 502 MJGW_UPSTREAM_BAD_RESPONSE', async (t) => {
  const gw = await startGateway(t)
  const bodies = ['<html>502 Bad Gateway</html>', '{"id":"T1","status":', '[]', '[{"id":"T1","status":"SUCCESS"}]', '"T1"', '42', 'true', '\u0000\u0001\u0002']
  for (const body of bodies) {
    gw.upstream.enqueue({ kind: 'raw', body })
    const res = await gw.fetchTask('T1')
    t.equal(res.status, 502, JSON.stringify(body))
    t.match(res.json(), { statusCode: 502, code: 'MJGW_UPSTREAM_BAD_RESPONSE', error: 'Bad Gateway' })
  }
  t.equal(gw.upstream.calls, bodies.length, 'a bad body is not retried')
})

t.test('docs/errors.md §3 upstream 3xx (not followed) → 502 MJGW_UPSTREAM_BAD_RESPONSE', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.enqueue({ kind: 'raw', status: 302, body: '', headers: { location: 'http://elsewhere.invalid/' } })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 502)
  t.match(res.json(), { code: 'MJGW_UPSTREAM_BAD_RESPONSE', message: /HTTP 302/ })
  t.equal(gw.upstream.calls, 1)
})

t.test('docs/caching.md §1 only a 200 is a task: another 2xx (201, 206) is a bad response, never cached', async (t) => {
  const gw = await startGateway(t)
  for (const status of [201, 206]) {
    gw.upstream.enqueue({ kind: 'json', status, body: taskBody('T1', 'SUCCESS') })
    const res = await gw.fetchTask('T1')
    t.equal(res.status, 502, `HTTP ${status}`)
    t.match(res.json(), { code: 'MJGW_UPSTREAM_BAD_RESPONSE', message: new RegExp(`HTTP ${status}`) })
  }
  t.equal(gw.upstream.calls, 2, 'nothing was cached')
})

t.test('docs/errors.md §3 an empty upstream content-type on a 4xx goes out as JSON', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.enqueue({ kind: 'raw', status: 404, body: '{"code":404}', headers: { 'content-type': '' } })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 404)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
})

t.test('docs/errors.md §3 unreachable (reset before any answer) → 502 MJGW_UPSTREAM_UNREACHABLE; over the budget → 504 MJGW_UPSTREAM_TIMEOUT', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_TIMEOUT_MS: '300', UPSTREAM_RETRIES: '0' })
  gw.upstream.enqueue({ kind: 'reset' }, { kind: 'hang' })
  const reset = await gw.fetchTask('T1')
  t.equal(reset.status, 502)
  t.match(reset.json(), { code: 'MJGW_UPSTREAM_UNREACHABLE', error: 'Bad Gateway' })
  const hang = await gw.fetchTask('T1')
  t.equal(hang.status, 504)
  t.match(hang.json(), { statusCode: 504, code: 'MJGW_UPSTREAM_TIMEOUT', error: 'Gateway Timeout', message: 'upstream did not answer within 300 ms' })
})

t.test('docs/errors.md §1 every error is JSON in Fastify shape; a route that does not exist is 404', async (t) => {
  const gw = await startGateway(t)
  for (const path of ['/mj/task/list', '/mj/task/T1', '/mj/task/T1/fetch/extra', '/nope', '/mj/submit/imagine']) {
    const res = await rawGet(gw.port, path)
    t.equal(res.status, 404, path)
    const body = JSON.parse(res.body) as Record<string, unknown>
    t.same(Object.keys(body).sort(), ERROR_KEYS)
    t.match(body, { statusCode: 404, error: 'Not Found' })
  }
  const badUrl = await rawGet(gw.port, '/%zz')
  t.equal(badUrl.status, 400)
  t.same(JSON.parse(badUrl.body), { statusCode: 400, code: 'MJGW_BAD_REQUEST', error: 'Bad Request', message: 'malformed URL' })
  t.equal(gw.upstream.calls, 0)
})

t.test('docs/errors.md §3 a hostile upstream never crashes the gateway, which keeps serving afterwards', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_TIMEOUT_MS: '400', UPSTREAM_RETRIES: '1', UPSTREAM_MAX_BODY_BYTES: '100000' })
  gw.upstream.setHandler((req, i) => {
    const hostile = [
      { kind: 'reset' } as const,
      { kind: 'reset-mid-body' } as const,
      { kind: 'reset-mid-body', status: 503 } as const,
      { kind: 'hang' } as const,
      { kind: 'huge', bytes: 5_000_000 } as const,
      { kind: 'huge', bytes: 5_000_000, chunked: true } as const,
      { kind: 'slow-body', body: '{"id":"H","status":"SUCCESS"}', chunkDelayMs: 100 } as const,
      { kind: 'raw', body: Buffer.from([0xff, 0xfe, 0x00, 0x7b]) } as const,
      { kind: 'raw', status: 200, body: '{"id":"H"}', headers: { 'content-length': '3' } } as const,
      { kind: 'raw', status: 599, body: 'x' } as const,
      { kind: 'json', body: { id: 'H', status: { nested: ['SUCCESS'] }, imageUrl: 42 } } as const
    ]
    return hostile[i % hostile.length] ?? { kind: 'json', body: taskBody(req.url, 'SUCCESS') }
  })
  const statuses: number[] = []
  for (let i = 0; i < 11; i++) statuses.push((await gw.fetchTask(`H${i}`)).status)
  t.ok(statuses.every((s) => [200, 404, 502, 504].includes(s)), `answered every one: ${statuses.join(',')}`)
  gw.upstream.setHandler(() => ({ kind: 'json', body: taskBody('OK', 'SUCCESS') }))
  const ok = await gw.fetchTask('OK')
  t.equal(ok.status, 200, 'still serving')
  t.equal((await rawGet(gw.port, '/healthz')).status, 200)
})
