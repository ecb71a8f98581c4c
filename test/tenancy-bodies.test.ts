import t from 'tap'
import { UPSTREAM_KEY } from './helpers/gateway.js'
import { gatewayWithFake } from './helpers/tenancy.js'
import { post, send } from './helpers/net.js'
import { taskBody, type RecordedRequest } from '../src/demo/simulated-upstream.js'

const TOKEN = 'bodies-client-token-1'
const AUTH = { authorization: `Bearer ${TOKEN}` }
const ENV = { CLIENT_KEYS: `web:${TOKEN}`, TASK_OWNERSHIP: 'off', RATE_LIMIT_PER_MINUTE: '0' }
const SUBMITTED = { code: 1, description: 'Submit success', result: '1730621826053001' }

const submitsSeen = (reqs: readonly RecordedRequest[]): Buffer[] => reqs.filter((r) => r.url.startsWith('/mj/submit/')).map((r) => r.body)

t.test('docs/tenancy.md bodies: a submit body reaches upstream byte for byte, only top-level notifyHook members removed', async (t) => {
  const { gw, up } = await gatewayWithFake(t, ENV)
  up.setHandler(() => ({ kind: 'json', body: SUBMITTED }))
  const body =
    '{\n  "prompt" : "caf\\u00e9 \u732a --v 6.1",\r\n\t"seed": 12345678901234567890123,' +
    ' "weight": 1.50000000000000000001e-400, "notifyHook":"http://evil.example/x", "nested": {"notifyHook": "kept", "n": -0.0},' +
    ' "NotifyHook": 1, "dup": 1, "dup": 2, "\\u006eotifyHook": [1, {"a": null}], "last": true}'
  const expected =
    '{\n  "prompt" : "caf\\u00e9 \u732a --v 6.1",\r\n\t"seed": 12345678901234567890123,' +
    ' "weight": 1.50000000000000000001e-400, "nested": {"notifyHook": "kept", "n": -0.0},' +
    ' "dup": 1, "dup": 2, "last": true}'
  const r = await post(`${gw.url}/mj/submit/imagine`, body, { ...AUTH, 'content-type': 'application/json' })
  t.equal(r.status, 200)
  t.equal(submitsSeen(up.requests)[0]?.toString(), expected)
  const plain = '{"prompt":"a","base64Array":["AAAA"],"n":0.1000000000000000055511151231257827}'
  await post(`${gw.url}/mj/submit/blend`, plain, { ...AUTH, 'content-type': 'application/json; charset=utf-8' })
  t.ok(submitsSeen(up.requests)[1]?.equals(Buffer.from(plain)), 'without notifyHook: the very bytes')
})

t.test('docs/tenancy.md bodies: ALLOW_NOTIFY_HOOK=true forwards the body untouched', async (t) => {
  const { gw, up } = await gatewayWithFake(t, { ...ENV, ALLOW_NOTIFY_HOOK: 'true' })
  up.setHandler(() => ({ kind: 'json', body: SUBMITTED }))
  const body = '{"prompt":"a", "notifyHook":"https://hooks.example/mj" , "n":1e999}'
  t.equal((await post(`${gw.url}/mj/submit/imagine`, body, { ...AUTH, 'content-type': 'application/json' })).status, 200)
  t.equal(submitsSeen(up.requests)[0]?.toString(), body)
})

t.test('docs/tenancy.md bodies: nesting deeper than 64 levels is 400 MJGW_BAD_REQUEST (never a 5xx) on every JSON route', async (t) => {
  const { gw, up } = await gatewayWithFake(t, ENV)
  up.setHandler(() => ({ kind: 'json', body: SUBMITTED }))
  const nested = (depth: number): string => `{"prompt":"a","x":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`
  for (const depth of [65, 200, 10_000, 1_000_000]) {
    const r = await post(`${gw.url}/mj/submit/imagine`, nested(depth), { ...AUTH, 'content-type': 'application/json' })
    t.equal(r.status, 400, `submit, depth ${depth}`)
    t.same(r.json(), { statusCode: 400, code: 'MJGW_BAD_REQUEST', error: 'Bad Request', message: 'body nested deeper than 64 levels' })
    if (depth > 100_000) continue // past list-by-condition's 1 MiB body limit (413)
    const list = await post(`${gw.url}/mj/task/list-by-condition`, `{"ids":["1"],"x":${'['.repeat(depth)}${']'.repeat(depth)}}`, {
      ...AUTH,
      'content-type': 'application/json'
    })
    t.equal(list.status, 400, `list-by-condition, depth ${depth}`)
    t.match(list.json(), { statusCode: 400, code: 'MJGW_BAD_REQUEST' })
  }
  t.equal(up.calls, 0, 'none reached upstream')
  t.equal((await post(`${gw.url}/mj/submit/imagine`, nested(63), { ...AUTH, 'content-type': 'application/json' })).status, 200, '64 levels pass')
})

/** An upstream that, like a careless error page, echoes the request headers it received into its body. */
function echoHeaders(req: RecordedRequest): string {
  return JSON.stringify({ id: req.url.split('/')[3], status: 'SUCCESS', code: 1, result: 'x', echo: req.headers })
}

t.test('docs/tenancy.md bodies: an upstream answer that contains the key is replaced by 502 on every route that passes bodies', async (t) => {
  for (const style of ['bearer', 'mj-api-secret'] as const) {
    const { gw, up } = await gatewayWithFake(t, { ...ENV, UPSTREAM_AUTH_STYLE: style, STALE_IF_ERROR_SECONDS: '0' })
    for (const status of [200, 400, 404, 429]) {
      up.setHandler((req) => ({ kind: 'raw', status, body: echoHeaders(req) }))
      const answers = [
        await send('GET', `${gw.url}/mj/task/1730621826053002/fetch`, { headers: AUTH }),
        await send('GET', `${gw.url}/mj/task/1730621826053002/image-seed`, { headers: AUTH }),
        await post(`${gw.url}/mj/submit/imagine`, { prompt: 'a' }, AUTH),
        await post(`${gw.url}/mj/task/list-by-condition`, { ids: ['1730621826053003'] }, AUTH)
      ]
      for (const r of answers) {
        t.equal(r.status, 502, `${style}, upstream ${status}`)
        t.match(r.json(), { statusCode: 502, code: 'MJGW_UPSTREAM_BAD_RESPONSE' })
        t.notOk(r.body.includes(UPSTREAM_KEY), 'the key is not in the answer')
        t.notOk(JSON.stringify(r.headers).includes(UPSTREAM_KEY), 'nor in its headers')
      }
    }
    up.setHandler(() => ({ kind: 'json', body: taskBody('1730621826053005', 'SUCCESS') }))
    t.equal((await send('GET', `${gw.url}/mj/task/1730621826053005/fetch`, { headers: AUTH })).status, 200, 'an ordinary body passes')
    t.notOk(gw.logs().includes(UPSTREAM_KEY), 'nor in a log line')
  }
})
