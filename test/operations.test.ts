/**
 * Health, readiness and logs (docs/http-api.md §7, docs/errors.md §5, docs/operations.md §4).
 */
import t from 'tap'
import { taskBody } from '../src/demo/simulated-upstream.js'
import { UPSTREAM_KEY, rawGet, startGateway } from './helpers/gateway.js'
import { get } from './helpers/net.js'

const CLIENT_TOKEN = 'client-token-SECRET-71c3'
const COOKIE_VALUE = 'cookie-value-SECRET-0b9e'
const METRICS_TOKEN = 'metrics-token-SECRET-e44d'
const SECRETS = [UPSTREAM_KEY, CLIENT_TOKEN, COOKIE_VALUE, METRICS_TOKEN]

t.test('docs/http-api.md §7 GET /healthz → 200 {"status":"ok"}; GET /readyz → 200 naming redis: off', async (t) => {
  const gw = await startGateway(t)
  const health = await get(`${gw.url}/healthz`)
  t.equal(health.status, 200)
  t.same(health.json(), { status: 'ok' })
  t.match(health.headers['content-type'], /^application\/json/)
  const ready = await get(`${gw.url}/readyz`)
  t.equal(ready.status, 200)
  t.match(ready.json(), { redis: 'off' })
  t.equal(gw.upstream.calls, 0, 'neither asks upstream')
})

t.test('docs/operations.md §5 /healthz stays 200 while upstream is down', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_RETRIES: '0' })
  gw.upstream.setHandler(() => ({ kind: 'reset' }))
  t.equal((await gw.fetchTask('T1')).status, 502)
  t.equal((await get(`${gw.url}/healthz`)).status, 200)
  t.equal((await get(`${gw.url}/readyz`)).status, 200)
})

t.test('docs/operations.md §4 logs: pino JSON lines; no key, client token, cookie or metrics token after traffic including errors', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'trace', METRICS_TOKEN, UPSTREAM_TIMEOUT_MS: '300', UPSTREAM_RETRIES: '1' })
  const client = { authorization: `Bearer ${CLIENT_TOKEN}`, 'mj-api-secret': CLIENT_TOKEN, cookie: `sid=${COOKIE_VALUE}` }
  gw.upstream.enqueue(
    { kind: 'json', body: taskBody('T1', 'SUCCESS') },
    { kind: 'json', status: 401, body: { error: `bad key ${UPSTREAM_KEY}` } },
    { kind: 'raw', status: 500, body: `internal: key=${UPSTREAM_KEY}` },
    { kind: 'raw', body: `<html>${UPSTREAM_KEY}</html>` },
    { kind: 'reset' },
    { kind: 'reset' },
    { kind: 'hang' },
    { kind: 'json', status: 429, body: { key: UPSTREAM_KEY } }
  )
  for (const id of ['T1', 'T1', 'A1', 'E1', 'B1', 'R1', 'H1', 'L1']) await gw.fetchTask(id, client)
  await rawGet(gw.port, '/mj/task/bad.id/fetch')
  await get(`${gw.url}/metrics`, { authorization: `Bearer ${METRICS_TOKEN}` })
  await get(`${gw.url}/metrics`, { authorization: 'Bearer wrong' })
  await get(`${gw.url}/nope`, client)

  const logs = gw.logs()
  const lines = logs.trim().split('\n')
  t.ok(lines.length > 12, `${lines.length} log lines (one access line per request, plus the errors)`)
  for (const line of lines) JSON.parse(line)
  t.match(logs, /"code":"MJGW_UPSTREAM_ERROR"[^\n]*"msg":"answered with a gateway error"/, 'upstream failures are logged')
  t.match(logs, /MJGW_UPSTREAM_AUTH/)
  for (const secret of SECRETS) t.notMatch(logs, secret, `${secret.split('-')[0]} is not in the logs`)
})

t.test('docs/operations.md §4 the logger redacts authorization, mj-api-secret and cookie headers wherever a line carries them', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info' })
  const headers = {
    authorization: `Bearer ${CLIENT_TOKEN}`,
    'mj-api-secret': UPSTREAM_KEY,
    cookie: `sid=${COOKIE_VALUE}`,
    'set-cookie': `sid=${COOKIE_VALUE}`,
    'proxy-authorization': `Basic ${CLIENT_TOKEN}`,
    'x-api-key': UPSTREAM_KEY,
    accept: 'application/json'
  }
  gw.app.log.info({ req: { headers } }, 'a request')
  gw.app.log.info({ res: { headers } }, 'a response')
  gw.app.log.info({ headers }, 'upstream headers')
  gw.app.log.info({ headers: { 'set-cookie': `sid=${COOKIE_VALUE}`, 'x-api-key': UPSTREAM_KEY } }, 'more headers')
  const logs = gw.logs()
  for (const secret of SECRETS) t.notMatch(logs, secret)
  const all = logs.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  const parsed = ['a request', 'a response', 'upstream headers', 'more headers'].map((msg) => all.find((l) => l['msg'] === msg))
  t.notOk((parsed[0]?.['req'] as Record<string, unknown>)['headers'], "Fastify's req serializer drops headers")
  t.notOk((parsed[1]?.['res'] as Record<string, unknown>)['headers'], "Fastify's res serializer drops headers")
  t.match(parsed[2], {
    headers: { authorization: '[redacted]', 'mj-api-secret': '[redacted]', cookie: '[redacted]', 'proxy-authorization': '[redacted]', accept: 'application/json' }
  })
  t.match(parsed[3], { headers: { 'set-cookie': '[redacted]', 'x-api-key': '[redacted]' } })
})

t.test('docs/errors.md §5 no error response carries the key', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_TIMEOUT_MS: '300', UPSTREAM_RETRIES: '0', STALE_IF_ERROR_SECONDS: '0' })
  const echo = `{"error":"bad key","key":"${UPSTREAM_KEY}"}`
  for (const status of [401, 403, 500, 502, 503]) gw.upstream.enqueue({ kind: 'raw', status, body: echo })
  gw.upstream.enqueue({ kind: 'raw', body: `not json ${UPSTREAM_KEY}` }, { kind: 'hang' }, { kind: 'reset' })
  for (let i = 0; i < 8; i++) {
    const res = await gw.fetchTask(`K${i}`)
    t.ok(res.status >= 500, `${res.status}`)
    t.notMatch(JSON.stringify(res.headers) + res.body, UPSTREAM_KEY)
    t.notMatch(res.body, gw.config.upstream.keyFingerprint)
  }
})

t.test('docs/access-control.md §4 TRUST_PROXY decides whose address the gateway sees (X-Forwarded-For)', async (t) => {
  const cases: [string, string][] = [
    ['false', '127.0.0.1'],
    ['true', '198.51.100.1'],
    ['1', '203.0.113.7'],
    ['127.0.0.1, 10.0.0.0/8', '203.0.113.7'],
    ['10.0.0.1', '127.0.0.1']
  ]
  for (const [trustProxy, expected] of cases) {
    const gw = await startGateway(t, { LOG_LEVEL: 'info', TRUST_PROXY: trustProxy })
    await get(`${gw.url}/healthz`, { 'x-forwarded-for': '198.51.100.1, 203.0.113.7' })
    const incoming = gw
      .logs()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg?: string; req?: { remoteAddress?: string } })
      .find((l) => l.msg === 'request completed')
    t.equal(incoming?.req?.remoteAddress, expected, `TRUST_PROXY=${trustProxy}`)
  }
})
