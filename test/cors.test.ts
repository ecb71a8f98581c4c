import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { startGateway } from './helpers/gateway.js'
import { type HttpResult } from './helpers/net.js'

/** as these tests were written: an id nobody submitted is unknown upstream (null → 404) */
const ACCESS = { upstream: { inventUnknownTasks: false } }

const APP = 'https://app.example.com'
const ADMIN = 'http://localhost:5173'
const TOKEN = 'tok-cors-0011223344'

const corsHeaders = (res: HttpResult): string[] => Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))

const preflight = (origin: string, requestHeaders = 'authorization, mj-api-secret') => ({
  headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': requestHeaders }
})

t.test('docs/headers.md §7 CORS_ORIGINS: an exact-origin allowlist', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info', CORS_ORIGINS: `${APP}, ${ADMIN}`, CLIENT_KEYS: TOKEN }, ACCESS)
  const path = `/mj/task/${gw.upstream.finishedTask()}/fetch`
  const auth = { authorization: `Bearer ${TOKEN}` }

  t.test('an allowed origin is echoed back exactly (never *), with vary: origin and the readable headers exposed', async (t) => {
    for (const origin of [APP, ADMIN]) {
      const res = await gw.request('GET', path, { headers: { ...auth, origin } })
      t.equal(res.status, 200)
      t.equal(res.headers['access-control-allow-origin'], origin)
      t.match(res.headers['vary'], /origin/i)
      const exposed = String(res.headers['access-control-expose-headers']).split(/,\s*/)
      for (const h of ['etag', 'x-cache', 'retry-after', 'x-ratelimit-remaining']) t.ok(exposed.includes(h), `exposes ${h}`)
      t.equal(res.headers['access-control-allow-credentials'], undefined, 'tokens travel in headers: no credentials mode')
    }
  })

  t.test('any other origin gets no CORS header at all', async (t) => {
    for (const origin of ['https://evil.example', `${APP}.evil.example`, 'http://app.example.com', `${APP}:8443`, 'null', `${APP}/`]) {
      const res = await gw.request('GET', path, { headers: { ...auth, origin } })
      t.equal(res.status, 200, 'CORS is the browser’s business: the request itself is served')
      t.same(corsHeaders(res), [], origin)
      t.match(res.headers['vary'], /origin/i, 'still varies by origin, so a cache never mixes them')
    }
  })

  t.test('a preflight from an allowed origin: 204, allows authorization and mj-api-secret, needs no token, no upstream call', async (t) => {
    const before = gw.upstream.calls
    const res = await gw.request('OPTIONS', path, preflight(APP))
    t.equal(res.status, 204)
    t.equal(res.headers['access-control-allow-origin'], APP)
    const allowed = String(res.headers['access-control-allow-headers']).split(/,\s*/)
    t.ok(allowed.includes('authorization'))
    t.ok(allowed.includes('mj-api-secret'))
    t.match(res.headers['access-control-allow-methods'], /GET/)
    t.match(res.headers['access-control-allow-methods'], /POST/)
    t.equal(res.headers['access-control-max-age'], '600')
    t.equal(res.text, '')
    t.equal(gw.upstream.calls, before)
  })

  t.test('a preflight from any other origin gets no CORS header', async (t) => {
    const res = await gw.request('OPTIONS', path, preflight('https://evil.example'))
    t.ok(res.status >= 400 && res.status < 500, String(res.status))
    t.same(corsHeaders(res), [])
  })

})

t.test('401 and 429 carry the CORS headers, so browser code can read why', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info', CORS_ORIGINS: APP, CLIENT_KEYS: TOKEN, RATE_LIMIT_PER_MINUTE: '1' }, ACCESS)
  const path = `/mj/task/${gw.upstream.finishedTask()}/fetch`
  const refused = await gw.request('GET', path, { headers: { origin: APP, authorization: 'Bearer wrong' } })
  t.equal(refused.status, 401)
  t.equal(refused.headers['access-control-allow-origin'], APP)
  const limited = await gw.request('GET', path, { headers: { origin: APP } })
  t.equal(limited.status, 429)
  t.equal(limited.headers['access-control-allow-origin'], APP)
  t.ok(limited.headers['retry-after'])
})

t.test('docs/headers.md §7 CORS_ORIGINS empty = no CORS headers', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info' }, ACCESS)
  const path = `/mj/task/${gw.upstream.finishedTask()}/fetch`
  const res = await gw.request('GET', path, { headers: { origin: APP } })
  t.equal(res.status, 200)
  t.same(corsHeaders(res), [])
  const pre = await gw.request('OPTIONS', path, preflight(APP))
  t.equal(pre.status, 404)
  t.same(corsHeaders(pre), [])
})

t.test('docs/access-control.md §5 CORS_ORIGINS never allows *', async (t) => {
  t.throws(() => loadConfig({ UPSTREAM_API_KEY: 'k', CORS_ORIGINS: '*' }), ConfigError)
  t.throws(() => loadConfig({ UPSTREAM_API_KEY: 'k', CORS_ORIGINS: `${APP},*` }), ConfigError)
})
