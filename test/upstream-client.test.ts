/**
 * The upstream client through the gateway: key injection, credential stripping, retries, the one time
 * budget, the body cap and TLS trust (docs/configuration.md §3, docs/headers.md §10, docs/errors.md §3).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { GatewayMetrics } from '../src/metrics/gateway-metrics.js'
import { UpstreamClient } from '../src/upstream/client.js'
import { startSimulatedUpstream, taskBody } from '../src/demo/simulated-upstream.js'
import { UPSTREAM_KEY, sample, startGateway } from './helpers/gateway.js'

const CLIENT_CREDENTIALS = {
  authorization: 'Bearer client-token-SECRET-1',
  'mj-api-secret': 'client-token-SECRET-2',
  cookie: 'session=cookie-SECRET-3',
  'proxy-authorization': 'Basic cHJveHk6U0VDUkVU'
}

t.test('docs/headers.md §10 bearer: upstream gets exactly one credential, Authorization: Bearer {key}; client credentials and cookies are not forwarded', async (t) => {
  const gw = await startGateway(t)
  const res = await gw.fetchTask('T1', CLIENT_CREDENTIALS)
  t.equal(res.status, 200)
  t.equal(gw.upstream.calls, 1)
  const h = gw.upstream.requests[0]?.headers ?? {}
  t.equal(h['authorization'], `Bearer ${UPSTREAM_KEY}`)
  t.equal(h['mj-api-secret'], undefined)
  t.equal(h['cookie'], undefined)
  t.equal(h['proxy-authorization'], undefined)
  t.notMatch(JSON.stringify(h), /SECRET-[123]/, 'no client credential anywhere in the upstream request')
  t.equal(gw.upstream.requests[0]?.url, '/mj/task/T1/fetch')
  t.equal(gw.upstream.requests[0]?.method, 'GET')
})

t.test('docs/headers.md §10 UPSTREAM_AUTH_STYLE=mj-api-secret: upstream gets mj-api-secret: {key} and no Authorization', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_AUTH_STYLE: 'mj-api-secret' })
  t.equal((await gw.fetchTask('T1', CLIENT_CREDENTIALS)).status, 200)
  const h = gw.upstream.requests[0]?.headers ?? {}
  t.equal(h['mj-api-secret'], UPSTREAM_KEY)
  t.equal(h['authorization'], undefined)
  t.equal(h['cookie'], undefined)
  t.notMatch(JSON.stringify(h), /SECRET-[123]/)
})

t.test('docs/configuration.md §3 UPSTREAM_RETRIES: 502/503/504 are retried (503, 503, 200 → 3 calls and a 200)', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.enqueue({ kind: 'json', status: 503, body: { error: 'busy' } }, { kind: 'json', status: 503, body: { error: 'busy' } })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 200)
  t.equal(gw.upstream.calls, 3)
  t.equal(res.headers['x-cache'], 'MISS')

  gw.upstream.reset()
  gw.upstream.enqueue({ kind: 'raw', status: 502, body: 'bad gateway' }, { kind: 'raw', status: 504, body: 'gateway timeout' })
  t.equal((await gw.fetchTask('T2')).status, 200)
  t.equal(gw.upstream.calls, 3, '502 and 504 too')
})

t.test('docs/errors.md §3 connection errors are retried (reset, reset, 200 → 3 calls and a 200)', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.enqueue({ kind: 'reset' }, { kind: 'reset-mid-body' })
  t.equal((await gw.fetchTask('T1')).status, 200)
  t.equal(gw.upstream.calls, 3)
})

t.test('docs/errors.md §3 upstream 500 is not retried: 1 call → 502 MJGW_UPSTREAM_ERROR', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.enqueue({ kind: 'json', status: 500, body: { error: 'boom' } })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 502)
  t.match(res.json(), { statusCode: 502, code: 'MJGW_UPSTREAM_ERROR', error: 'Bad Gateway' })
  t.equal(gw.upstream.calls, 1)
})

t.test('docs/errors.md §3 upstream 404 is not retried: 1 call, passed through', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.enqueue({ kind: 'json', status: 404, body: { code: 404, description: 'no such task' } })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 404)
  t.same(res.json(), { code: 404, description: 'no such task' })
  t.equal(gw.upstream.calls, 1)
})

t.test('docs/errors.md §3 retries spent: 503 ×3 → 3 calls → 502 MJGW_UPSTREAM_ERROR', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.setHandler(() => ({ kind: 'json', status: 503, body: { error: 'busy' } }))
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 502)
  t.match(res.json(), { code: 'MJGW_UPSTREAM_ERROR', message: /503/ })
  t.equal(gw.upstream.calls, 3, 'UPSTREAM_RETRIES=2 by default: 1 + 2')
})

t.test('docs/configuration.md §3 UPSTREAM_RETRIES=0: one try only', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_RETRIES: '0' })
  gw.upstream.setHandler(() => ({ kind: 'json', status: 503, body: { error: 'busy' } }))
  t.equal((await gw.fetchTask('T1')).status, 502)
  t.equal(gw.upstream.calls, 1)
  gw.upstream.reset()
  gw.upstream.enqueue({ kind: 'reset' })
  t.match((await gw.fetchTask('T2')).json(), { code: 'MJGW_UPSTREAM_UNREACHABLE' })
  t.equal(gw.upstream.calls, 1)
})

t.test('docs/errors.md §3 upstream over the time budget → 504 MJGW_UPSTREAM_TIMEOUT (a hang, and a body that drips too slowly)', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_TIMEOUT_MS: '300' })
  gw.upstream.enqueue({ kind: 'hang' })
  const started = Date.now()
  const res = await gw.fetchTask('T1')
  const elapsed = Date.now() - started
  t.equal(res.status, 504)
  t.match(res.json(), { statusCode: 504, code: 'MJGW_UPSTREAM_TIMEOUT', error: 'Gateway Timeout' })
  t.ok(elapsed >= 250 && elapsed < 3000, `answered after ${elapsed} ms`)
  t.equal(gw.upstream.calls, 1, 'a timeout spends the budget: no retry')

  gw.upstream.reset()
  gw.upstream.enqueue({ kind: 'slow-body', body: JSON.stringify(taskBody('T2', 'SUCCESS')), chunkDelayMs: 50, chunkBytes: 10 })
  t.match((await gw.fetchTask('T2')).json(), { code: 'MJGW_UPSTREAM_TIMEOUT' })
  t.equal(gw.upstream.calls, 1)
})

t.test('docs/configuration.md §3 UPSTREAM_TIMEOUT_MS is one budget covering the retries', async (t) => {
  // A slow 503 spends most of the budget; the retry gets only what is left, not a budget of its own.
  const gw = await startGateway(t, { UPSTREAM_TIMEOUT_MS: '2000' })
  gw.upstream.enqueue({ kind: 'json', status: 503, body: {}, delayMs: 1500 }, { kind: 'hang' })
  const started = Date.now()
  const res = await gw.fetchTask('T1')
  const elapsed = Date.now() - started
  t.equal(res.status, 504)
  t.equal(gw.upstream.calls, 2, 'the retry was made')
  t.ok(elapsed >= 1900 && elapsed < 3000, `the whole fetch took ${elapsed} ms (a fresh budget per try would take ≥ 3500)`)
})

t.test('docs/configuration.md §3 UPSTREAM_MAX_BODY_BYTES: a 12 MB body is refused with 502 MJGW_UPSTREAM_BAD_RESPONSE (content-length and chunked)', async (t) => {
  const gw = await startGateway(t)
  for (const chunked of [false, true]) {
    gw.upstream.reset()
    gw.upstream.enqueue({ kind: 'huge', bytes: 12 * 1024 * 1024, chunked })
    const res = await gw.fetchTask('T1')
    t.equal(res.status, 502, chunked ? 'chunked' : 'content-length')
    t.match(res.json(), { code: 'MJGW_UPSTREAM_BAD_RESPONSE', message: /larger than 10485760/ })
    t.equal(gw.upstream.calls, 1, 'not retried')
  }
  t.equal((await gw.fetchTask('T2')).status, 200, 'the gateway keeps serving')
})

t.test('docs/configuration.md §3 UPSTREAM_MAX_BODY_BYTES is inclusive: exactly the limit passes, one byte more does not', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_MAX_BODY_BYTES: '5000' })
  gw.upstream.enqueue({ kind: 'huge', bytes: 5000, chunked: true }, { kind: 'huge', bytes: 5001 })
  const ok = await gw.fetchTask('T1')
  t.equal(ok.status, 200)
  t.equal(Buffer.byteLength(ok.body), 5000)
  t.match((await gw.fetchTask('T2')).json(), { code: 'MJGW_UPSTREAM_BAD_RESPONSE' })
})

t.test('docs/errors.md §3 connection refused → 502 MJGW_UPSTREAM_UNREACHABLE', async (t) => {
  const closed = createNetServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const gw = await startGateway(t, { UPSTREAM_RETRIES: '1' }, { upstreamUrl: `http://127.0.0.1:${port}` })
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 502)
  t.match(res.json(), { statusCode: 502, code: 'MJGW_UPSTREAM_UNREACHABLE', message: /ECONNREFUSED/ })
  t.notMatch(res.body, UPSTREAM_KEY)
})

t.test('docs/errors.md §3 reset mid-body, every try → 502 MJGW_UPSTREAM_UNREACHABLE', async (t) => {
  const gw = await startGateway(t)
  gw.upstream.setHandler(() => ({ kind: 'reset-mid-body' }))
  const res = await gw.fetchTask('T1')
  t.equal(res.status, 502)
  t.match(res.json(), { code: 'MJGW_UPSTREAM_UNREACHABLE' })
  t.equal(gw.upstream.calls, 3, 'a connection error is retried')
})

t.test('docs/configuration.md §3 UPSTREAM_CA_FILE: a self-signed https upstream is unreachable until its certificate is trusted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ])
  let requests = 0
  const server = createHttpsServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
    requests++
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(taskBody('T1', 'SUCCESS')))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const httpsUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`

  const untrusted = await startGateway(t, {}, { upstreamUrl: httpsUrl })
  const refused = await untrusted.fetchTask('T1')
  t.equal(refused.status, 502)
  t.match(refused.json(), { code: 'MJGW_UPSTREAM_UNREACHABLE', message: /SELF_SIGNED|CERT/ })
  t.equal(requests, 0, 'no request crossed an untrusted connection')
  t.equal(sample(await untrusted.metrics(), 'mj_gateway_upstream_requests_total', { outcome: 'error' }), 1, 'a trust failure is not retried')

  const trusted = await startGateway(t, { UPSTREAM_CA_FILE: certFile }, { upstreamUrl: httpsUrl })
  const ok = await trusted.fetchTask('T1')
  t.equal(ok.status, 200)
  t.match(ok.json(), { id: 'T1', status: 'SUCCESS' })
  t.equal(requests, 1)
})

t.test('UpstreamClient: a non-idempotent POST is tried once, carries its body, and the key always wins over extra headers', async (t) => {
  const up = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => up.close())
  const config = loadConfig({ UPSTREAM_API_KEY: UPSTREAM_KEY, UPSTREAM_BASE_URL: up.url })
  const metrics = new GatewayMetrics({ cache: { entries: () => 0, bytes: () => 0 }, redis: false })
  const client = new UpstreamClient(config.upstream, metrics, () => 0)
  t.teardown(() => client.close())

  up.enqueue({ kind: 'json', status: 503, body: { error: 'busy' } })
  await t.rejects(client.request({ method: 'POST', path: '/mj/submit/imagine', body: Buffer.from('{"prompt":"pig"}'), idempotent: false }), {
    code: 'MJGW_UPSTREAM_ERROR'
  })
  t.equal(up.calls, 1, 'a submit spends money: never retried')
  t.equal(up.requests[0]?.headers['content-type'], 'application/json')
  t.equal(up.requests[0]?.body.toString(), '{"prompt":"pig"}')

  up.enqueue({ kind: 'json', status: 429, body: { error: 'slow down' }, headers: { 'retry-after': '7' } })
  const limited = await client.request({ method: 'GET', path: '/mj/task/T1/fetch', idempotent: true })
  t.same({ status: limited.status, retryAfter: limited.retryAfter, contentType: limited.contentType }, { status: 429, retryAfter: '7', contentType: 'application/json' })

  t.same(client.headers({ authorization: 'Bearer client', 'x-extra': '1' }), {
    accept: 'application/json',
    'user-agent': 'mj-gateway',
    authorization: `Bearer ${UPSTREAM_KEY}`,
    'x-extra': '1'
  })
})

t.test('UpstreamClient: no backoff sleeps past the deadline; the last failure is reported instead', async (t) => {
  const up = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => up.close())
  const config = loadConfig({ UPSTREAM_API_KEY: UPSTREAM_KEY, UPSTREAM_BASE_URL: up.url, UPSTREAM_TIMEOUT_MS: '300' })
  const metrics = new GatewayMetrics({ cache: { entries: () => 0, bytes: () => 0 }, redis: false })
  // random() = 1: the first backoff is the full 200 ms, which would end after the 300 ms deadline.
  const client = new UpstreamClient(config.upstream, metrics, () => 1)
  t.teardown(() => client.close())
  up.enqueue({ kind: 'json', status: 503, body: {}, delayMs: 150 })
  // Had it slept, the second try would have run out of budget: a second call and a timeout.
  await t.rejects(client.request({ method: 'GET', path: '/mj/task/T1/fetch', idempotent: true }), { code: 'MJGW_UPSTREAM_ERROR', message: /503/ })
  t.equal(up.calls, 1, 'no second try')
})

t.test('UpstreamClient: a repeated content-type or retry-after header is read as its first value', async (t) => {
  const server = createHttpServer((_req, res) => {
    res.setHeader('content-type', ['application/json', 'text/plain'])
    res.setHeader('retry-after', ['3', '9'])
    res.writeHead(429)
    res.end('{}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const config = loadConfig({ UPSTREAM_API_KEY: UPSTREAM_KEY, UPSTREAM_BASE_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
  const client = new UpstreamClient(config.upstream, new GatewayMetrics({ cache: { entries: () => 0, bytes: () => 0 }, redis: false }))
  t.teardown(() => client.close())
  const res = await client.request({ method: 'GET', path: '/mj/task/T1/fetch', idempotent: true })
  t.same({ status: res.status, contentType: res.contentType, retryAfter: res.retryAfter }, { status: 429, contentType: 'application/json', retryAfter: '3' })
})

t.test('docs/headers.md §10 with client tokens configured, the accepted client credential is not forwarded either', async (t) => {
  for (const [style, clientHeader] of [
    ['bearer', { 'mj-api-secret': 'client-token-SECRET-9' }],
    ['mj-api-secret', { authorization: 'Bearer client-token-SECRET-9' }],
    ['bearer', { authorization: 'Bearer client-token-SECRET-9' }]
  ] as const) {
    const gw = await startGateway(t, { CLIENT_KEYS: 'web:client-token-SECRET-9', UPSTREAM_AUTH_STYLE: style })
    const res = await gw.fetchTask('T1', { ...clientHeader, cookie: 'sid=cookie-SECRET-3' })
    t.equal(res.status, 200, `${style} upstream, client sends ${Object.keys(clientHeader)[0]}`)
    const h = gw.upstream.requests[0]?.headers ?? {}
    t.notMatch(JSON.stringify(h), /client-token-SECRET|cookie-SECRET/, 'neither the client token nor the cookie reaches upstream')
    t.equal(style === 'bearer' ? h['authorization'] : h['mj-api-secret'], style === 'bearer' ? `Bearer ${UPSTREAM_KEY}` : UPSTREAM_KEY)
    t.equal(style === 'bearer' ? h['mj-api-secret'] : h['authorization'], undefined, 'exactly one credential')
  }
})
