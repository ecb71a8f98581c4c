/**
 * docs/compatibility.md: every answer the gateway makes itself can be read by a browser on an allowed origin
 * (CORS headers, the error shape, the security headers), whoever writes it: a route, a hook, the router, the
 * hit lane or the parser's bare answers.
 */
import { STATUS_CODES, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { SECURITY_HEADERS } from '../src/http/security-headers.js'
import { CORS_EXPOSED_HEADERS } from '../src/http/cors-policy.js'
import { startGateway, type Gateway } from './helpers/gateway.js'
import { rawAnswer, send, waitFor, type HttpResult, type RawAnswer } from './helpers/net.js'
import { taskBody } from '../src/demo/simulated-upstream.js'

const APP = 'https://frontend.example.com'
const TOKEN = 'tok-compat-5c1e0a77d2'
const AUTH = { 'mj-api-secret': TOKEN }
const GUARDED = {
  CORS_ORIGINS: APP,
  CLIENT_KEYS: `vue:${TOKEN}`,
  PASSTHROUGH: 'on',
  SUBMIT_MAX_BODY_BYTES: '2000',
  UPSTREAM_RETRIES: '0',
  UPSTREAM_TIMEOUT_MS: '400',
  STALE_IF_ERROR_SECONDS: '0'
}

type Answer = Pick<HttpResult, 'status' | 'headers' | 'body'> | RawAnswer

/** What every answer the gateway makes itself carries, for a request from the allowed origin. */
function readableError(t: Test, res: Answer, status: number, code: string | RegExp, what: string): void {
  t.equal(res.status, status, `${what}: status (${res.body.slice(0, 160)})`)
  t.equal(res.headers['access-control-allow-origin'], APP, `${what}: the allowed origin is echoed`)
  t.same(String(res.headers['access-control-expose-headers']).split(/,\s*/), CORS_EXPOSED_HEADERS, `${what}: readable headers exposed`)
  t.match(res.headers['vary'], /origin/i, `${what}: vary: origin`)
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    if (name !== 'cache-control') t.equal(res.headers[name], value, `${what}: ${name}`)
  }
  t.match(res.headers['content-type'], /^application\/json/, `${what}: JSON`)
  let body: unknown
  try {
    body = JSON.parse(res.body)
  } catch {
    t.fail(`${what}: the body is not JSON: ${JSON.stringify(res.body)}`)
    return
  }
  t.same(Object.keys(body as object).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: exactly the error shape`)
  t.match(body, { statusCode: status, code, error: STATUS_CODES[status], message: String }, `${what}: the error shape`)
}

const fromApp = (headers: Record<string, string> = {}): Record<string, string> => ({ origin: APP, ...headers })

t.test('compatibility: every answer the gateway makes itself carries CORS, the error shape and the security headers', async (t) => {
  const gw = await startGateway(t, GUARDED)
  const url = (path: string): string => `${gw.url}${path}`
  const cases: Array<[string, () => Promise<Answer>, number, string | RegExp]> = [
    ['400 a bad id', () => send('GET', url('/mj/task/bad.id/fetch'), { headers: fromApp(AUTH) }), 400, /^(FST_ERR_VALIDATION|MJGW_BAD_TASK_ID)$/],
    ['400 a body on a GET', () => send('GET', url('/mj/task/T1/fetch'), { headers: fromApp(AUTH), body: '{}' }), 400, 'MJGW_BAD_REQUEST'],
    ['400 a malformed list body', () => send('POST', url('/mj/task/list-by-condition'), { headers: fromApp(AUTH), body: { ids: [1.5] } }), 400, 'FST_ERR_VALIDATION'],
    ['401 no token', () => send('GET', url('/mj/task/T1/fetch'), { headers: fromApp() }), 401, 'MJGW_UNAUTHORIZED'],
    ['401 an unrouted /mj path without a token', () => send('POST', url('/mj/submit/no-such-kind'), { headers: fromApp(), body: {} }), 401, 'MJGW_UNAUTHORIZED'],
    ['404 an unrouted /mj path', () => send('POST', url('/mj/submit/no-such-kind'), { headers: fromApp(AUTH), body: {} }), 404, 'MJGW_NOT_FOUND'],
    ['404 GET /mj/task/list', () => send('GET', url('/mj/task/list'), { headers: fromApp(AUTH) }), 404, 'MJGW_NOT_FOUND'],
    ['404 a wrong method on a route', () => send('PUT', url('/mj/submit/imagine'), { headers: fromApp(AUTH), body: {} }), 404, 'MJGW_NOT_FOUND'],
    ['404 a path outside /mj', () => send('GET', url('/nothing/here'), { headers: fromApp() }), 404, 'MJGW_NOT_FOUND'],
    ['413 a submit over the limit', () => send('POST', url('/mj/submit/imagine'), { headers: fromApp(AUTH), body: { prompt: 'x'.repeat(3000) } }), 413, /./],
    ['415 a submit that is not JSON', () => send('POST', url('/mj/submit/imagine'), { headers: fromApp({ ...AUTH, 'content-type': 'text/xml' }), body: '<a/>' }), 415, /./],
    ['414 a URL over the limit', () => send('GET', url(`/mj/task/T1/fetch?x=${'a'.repeat(3000)}`), { headers: fromApp(AUTH) }), 414, 'MJGW_URI_TOO_LONG'],
    ['431 a header flood', () => send('GET', url('/mj/task/T1/fetch'), { headers: fromApp({ ...AUTH, ...Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`x-h${i}`, 'v'])) }) }), 431, 'MJGW_HEADERS_TOO_LARGE'],
    ['400 a URL whose escapes do not decode', () => rawAnswer(gw.port, `GET /mj/task/%ZZ/fetch HTTP/1.1\r\nHost: gw\r\nOrigin: ${APP}\r\nmj-api-secret: ${TOKEN}\r\nConnection: close\r\n\r\n`), 400, 'MJGW_BAD_TASK_ID'],
    ['401 such a URL without a token', () => rawAnswer(gw.port, `GET /mj/%ZZ HTTP/1.1\r\nHost: gw\r\nOrigin: ${APP}\r\nConnection: close\r\n\r\n`), 401, 'MJGW_UNAUTHORIZED']
  ]
  for (const [what, request, status, code] of cases) readableError(t, await request(), status, code, what)
  t.equal(gw.upstream.calls, 0, 'none of them reached upstream')

  gw.upstream.enqueue({ kind: 'json', status: 500, body: { error: 'boom' } })
  readableError(t, await send('GET', url('/mj/task/U1/fetch'), { headers: fromApp(AUTH) }), 502, 'MJGW_UPSTREAM_ERROR', '502 upstream failed')
  gw.upstream.enqueue({ kind: 'json', status: 401, body: { error: 'bad key' } })
  readableError(t, await send('POST', url('/mj/submit/imagine'), { headers: fromApp(AUTH), body: { prompt: 'a' } }), 502, 'MJGW_UPSTREAM_AUTH', '502 upstream refused the key')
  gw.upstream.enqueue({ kind: 'hang' })
  readableError(t, await send('GET', url('/mj/task/U2/fetch'), { headers: fromApp(AUTH) }), 504, 'MJGW_UPSTREAM_TIMEOUT', '504 upstream hung')
  gw.upstream.enqueue({ kind: 'raw', body: 'null' })
  readableError(t, await send('GET', url('/mj/task/U3/fetch'), { headers: fromApp(AUTH) }), 404, 'MJGW_TASK_NOT_FOUND', '404 an unknown task')
})

t.test('compatibility: 429 from the route, from an unrouted path and from the hit lane are all readable', async (t) => {
  const gw = await startGateway(t, { ...GUARDED, RATE_LIMIT_PER_MINUTE: '2' })
  gw.upstream.setHandler(() => ({ kind: 'json', body: taskBody('T1', 'SUCCESS') }))
  t.equal((await send('GET', `${gw.url}/mj/task/T1/fetch`, { headers: fromApp(AUTH) })).status, 200)
  t.equal((await send('GET', `${gw.url}/mj/task/T1/fetch`, { headers: fromApp(AUTH) })).status, 200)
  const limited = await send('GET', `${gw.url}/mj/task/T1/fetch`, { headers: fromApp(AUTH) })
  readableError(t, limited, 429, 'MJGW_RATE_LIMITED', '429 on a cached task')
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after')
  readableError(t, await send('GET', `${gw.url}/mj/nope`, { headers: fromApp(AUTH) }), 429, 'MJGW_RATE_LIMITED', '429 on an unrouted path')
})

t.test('compatibility: the bare answers of Node’s HTTP parser are the gateway’s own, readable from the allowed origin', async (t) => {
  const gw = await startGateway(t, GUARDED)
  gw.upstream.setHandler(() => ({ kind: 'json', body: taskBody('T1', 'SUCCESS') }))
  t.equal((await send('GET', `${gw.url}/mj/task/T1/fetch`, { headers: AUTH })).status, 200, 'T1 cached: the hit lane would answer it')
  const calls = gw.upstream.calls
  const head = (lines: string[]): string => `${lines.join('\r\n')}\r\n\r\n`

  const noHost = await rawAnswer(gw.port, head(['GET /mj/task/T1/fetch HTTP/1.1', `Origin: ${APP}`, `mj-api-secret: ${TOKEN}`]))
  readableError(t, noHost, 400, 'MJGW_BAD_REQUEST', 'HTTP/1.1 without Host')
  t.match(JSON.parse(noHost.body), { message: /Host/ })
  t.equal(noHost.headers['connection'], 'close')

  const http10 = await rawAnswer(gw.port, head(['GET /mj/task/T1/fetch HTTP/1.0', `mj-api-secret: ${TOKEN}`]))
  t.equal(http10.status, 200, 'HTTP/1.0 needs no Host')

  const expect = await rawAnswer(gw.port, head(['GET /mj/task/T1/fetch HTTP/1.1', 'Host: gw', `Origin: ${APP}`, `mj-api-secret: ${TOKEN}`, 'Expect: teapot', 'Connection: close']))
  readableError(t, expect, 417, 'MJGW_EXPECTATION_FAILED', 'an unknown Expect')
  const expectPost = await rawAnswer(
    gw.port,
    head(['POST /mj/unknown HTTP/1.1', 'Host: gw', `Origin: ${APP}`, 'Expect: 200-ok', 'Content-Length: 2', 'Connection: close']) + '{}'
  )
  readableError(t, expectPost, 417, 'MJGW_EXPECTATION_FAILED', 'an unknown Expect, before the token is looked at')

  const cont = await rawAnswer(
    gw.port,
    head(['POST /mj/task/list-by-condition HTTP/1.1', 'Host: gw', `mj-api-secret: ${TOKEN}`, 'Content-Type: application/json', 'Expect: 100-continue', 'Content-Length: 13', 'Connection: close']) + '{"ids":["T1"]}'.slice(0, 13)
  )
  t.match(cont.raw, /^HTTP\/1\.1 100 Continue\r\n/, 'Expect: 100-continue is still honoured')

  const malformed = await rawAnswer(gw.port, head(['GET /mj/task/T1/fetch HTTP/1.1', 'Host: gw', `Origin: ${APP}`, 'Bad Header Line']))
  readableError(t, malformed, 400, 'MJGW_BAD_REQUEST', 'a malformed head')
  const smuggle = await rawAnswer(gw.port, head(['POST /mj/unknown HTTP/1.1', 'Host: gw', `ORIGIN:  ${APP} `, 'Content-Length: 1', 'Transfer-Encoding: chunked']))
  readableError(t, smuggle, 400, 'MJGW_BAD_REQUEST', 'content-length with transfer-encoding')
  const overflow = await rawAnswer(gw.port, head(['GET /mj/task/T1/fetch HTTP/1.1', 'Host: gw', `Origin: ${APP}`, `X-Big: ${'b'.repeat(20_000)}`]))
  readableError(t, overflow, 431, 'MJGW_HEADERS_TOO_LARGE', 'a head over 16 KiB')

  const foreign = await rawAnswer(gw.port, head(['GET /mj/task/T1/fetch HTTP/1.1', 'Origin: https://evil.example', `mj-api-secret: ${TOKEN}`]))
  t.equal(foreign.status, 400)
  t.equal(foreign.headers['access-control-allow-origin'], undefined, 'another origin gets no CORS header')
  const foreignMalformed = await rawAnswer(gw.port, head(['GET / HTTP/1.1', 'Origin: https://evil.example', 'Bad Header Line']))
  t.equal(foreignMalformed.headers['access-control-allow-origin'], undefined, 'nor on a malformed head')
  t.equal(foreignMalformed.headers['x-frame-options'], 'DENY', 'the security headers all the same')
  t.equal(gw.upstream.calls, calls, 'none of them reached upstream')
  t.equal((await send('GET', `${gw.url}/mj/task/T1/fetch`, { headers: AUTH })).status, 200, 'still serving')
})

t.test('compatibility: a request that reaches the app while it closes gets a readable 503, not Fastify’s bare one', async (t) => {
  const gw = await startGateway(t, { ...GUARDED, UPSTREAM_TIMEOUT_MS: '1500' })
  gw.upstream.enqueue({ kind: 'hang' })
  // an upstream call in flight keeps the app closing for a while
  const inFlight = send('GET', `${gw.url}/mj/task/H1/fetch`, { headers: AUTH })
  await waitFor(() => gw.upstream.calls === 1)
  const closing = gw.app.close()
  await waitFor(() => gw.app.hitLane?.closing === true)
  // On the gateway's own socket such a request is a race (an idle keep-alive socket is closed at once, a busy one
  // ends with `connection: close`), so it comes through a second listener that hands it to the app's router.
  const door = createServer((req, res) => gw.app.routing(req, res))
  await new Promise<void>((resolve) => door.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => door.close(() => resolve())))
  const res = await send('GET', `http://127.0.0.1:${(door.address() as AddressInfo).port}/mj/task/H2/fetch`, { headers: fromApp(AUTH) })
  readableError(t, res, 503, 'MJGW_SHUTTING_DOWN', 'a request while closing')
  t.equal(res.headers['connection'], 'close')
  t.ok(Number(res.headers['retry-after']) > 0, 'retry-after')
  t.equal((await inFlight).status, 504, 'the request in flight was finished')
  await closing
  t.equal(gw.upstream.calls, 1, 'the late request never reached upstream')
})

t.test('compatibility: with client identities, every /mj/* path without a valid token is a 401, whatever the path or method (property)', async (t) => {
  const gw = await startGateway(t, { ...GUARDED, RATE_LIMIT_PER_MINUTE: '0' })
  // '.' and '..' would be resolved away by the client's URL parser before the request is sent
  const segment = fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@-]{0,12}$/).filter((s) => s !== '.' && s !== '..')
  const path = fc.tuple(fc.constantFrom('', '/mj-fast', '/mj-relax', '/mj-turbo'), fc.array(segment, { maxLength: 5 }), fc.constantFrom('', '?a=1', '/'))
  const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')
  const credential = fc.constantFrom<Record<string, string>>({}, { authorization: 'Bearer nope' }, { 'mj-api-secret': `${TOKEN}x` }, { authorization: TOKEN })
  await fc.assert(
    fc.asyncProperty(path, method, credential, async ([prefix, segments, tail], m, cred) => {
      const p = `${prefix}/mj/${segments.join('/')}${tail}`
      const res = await send(m, `${gw.url}${p}`, { headers: fromApp(cred), ...(m === 'GET' || m === 'OPTIONS' ? {} : { body: {} }) })
      if (res.headers['access-control-allow-origin'] !== APP) throw new Error(`${m} ${p}: no CORS`)
      // a preflight (OPTIONS from an allowed origin) never carries a token and is answered before the check
      if (m === 'OPTIONS' && res.status === 204) return
      if (res.status !== 401) throw new Error(`${m} ${p} → ${res.status}`)
      if ((JSON.parse(res.body) as { code: string }).code !== 'MJGW_UNAUTHORIZED') throw new Error(`${m} ${p}: ${res.body}`)
    }),
    { numRuns: 300 }
  )
  t.equal(gw.upstream.calls, 0, 'nothing reached upstream')
  const withToken = await send('GET', `${gw.url}/mj/account/list`, { headers: fromApp(AUTH) })
  t.equal(withToken.status, 404, 'with a valid token an unknown path is a 404')
  t.equal((await send('GET', `${gw.url}/mj`, { headers: fromApp() })).status, 401, '/mj itself too')
  t.equal((await send('GET', `${gw.url}/elsewhere`, { headers: fromApp() })).status, 404, 'outside /mj/ a plain 404')
})

t.test('compatibility: unknown /mj/* paths count against the rate limit like routed ones, and in one series', async (t) => {
  const gw = await startGateway(t, { CLIENT_KEYS: `vue:${TOKEN}`, RATE_LIMIT_PER_MINUTE: '3' })
  const statuses: number[] = []
  for (const p of ['/mj/a', '/mj-fast/mj/b', '/mj/task/list']) statuses.push((await send('GET', `${gw.url}${p}`)).status)
  statuses.push((await send('GET', `${gw.url}/mj/task/T1/fetch`)).status)
  t.same(statuses, [401, 401, 401, 429], 'probing without a token runs into the limit of the address')
  const tokenStatuses: number[] = []
  for (const p of ['/mj/a', '/mj/b', '/mj/c', '/mj/d']) tokenStatuses.push((await send('GET', `${gw.url}${p}`, { headers: AUTH })).status)
  t.same(tokenStatuses, [404, 404, 404, 429], 'probing with a token runs into the client’s limit')
  const m = await gw.metrics()
  t.match(m, /mj_gateway_http_requests_total\{method="GET",route="unmatched",status_code="404"\} 3/, 'counted as unmatched, never by raw path')
  t.notMatch(m, /route="\/mj\/\*"|route="\/mj\/a"/)
})

t.test('compatibility: without client identities an unknown /mj/* path is a 404 in the contract shape', async (t) => {
  const gw = await startGateway(t, { CORS_ORIGINS: APP })
  for (const p of ['/mj/submit/video', '/mj/x/y', '/mj-turbo/mj/nope']) {
    readableError(t, await send('POST', `${gw.url}${p}`, { headers: fromApp(), body: {} }), 404, 'MJGW_NOT_FOUND', p)
  }
  const pre = await send('OPTIONS', `${gw.url}/mj/submit/video`, { headers: fromApp({ 'access-control-request-method': 'POST', 'access-control-request-headers': 'mj-api-secret, content-type' }) })
  t.equal(pre.status, 204, 'a preflight to any /mj path is answered')
  t.equal(pre.headers['access-control-allow-origin'], APP)
})

t.test('compatibility: CORS on the health and metrics routes too, so a dashboard on an allowed origin can read them', async (t) => {
  const gw: Gateway = await startGateway(t, { CORS_ORIGINS: APP, METRICS_TOKEN: 'metrics-tok-1' })
  const health = await send('GET', `${gw.url}/healthz`, { headers: fromApp() })
  t.equal(health.status, 200)
  t.equal(health.headers['access-control-allow-origin'], APP)
  readableError(t, await send('GET', `${gw.url}/metrics`, { headers: fromApp() }), 401, 'MJGW_UNAUTHORIZED', '/metrics without its token')
})
