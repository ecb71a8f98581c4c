/**
 * What the gateway tells its operator (docs/operations-resilience.md, "Readiness" and "Metrics"): /readyz degraded
 * while upstream rejects the key, request series at zero from the start, mj_gateway_build_info, and the command
 * line's --help and --version.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'
import { ENV_VARIABLES } from '../src/config.js'
import { cliAnswer } from '../src/process/cli.js'
import { KeyHealth, KEY_REJECTED_WINDOW_MS } from '../src/upstream/key-health.js'
import { parseMetrics, startGateway } from './helpers/gateway.js'
import { get } from './helpers/net.js'

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

t.test('/readyz says degraded, and why, while upstream rejects the key; ready again after a success', async (t) => {
  const gw = await startGateway(t, { RATE_LIMIT_PER_MINUTE: '0' })
  t.same((await get(`${gw.url}/readyz`)).json(), { status: 'ready', redis: 'off' })
  gw.upstream.enqueue({ kind: 'json', status: 401, body: { message: 'invalid key' } })
  t.equal((await gw.fetchTask('T-rejected')).status, 502)
  const degraded = await get(`${gw.url}/readyz`)
  t.equal(degraded.status, 200, 'still ready: cached tasks are served')
  t.match(degraded.json(), { status: 'degraded', redis: 'off', upstream: 'key_rejected', reason: /answered 401 to the gateway's key \d+ s ago/ })
  t.notMatch(degraded.body, gw.config.upstream.apiKey, 'the key itself is never named')
  t.equal((await gw.fetchTask('T-fine')).status, 200)
  t.same((await get(`${gw.url}/readyz`)).json(), { status: 'ready', redis: 'off' }, 'an upstream success clears it')
})

t.test('KeyHealth: a rejection counts for a minute, a later success clears it, a 4xx other than 401/403 is neither', async (t) => {
  let now = 1_000_000
  const k = new KeyHealth(() => now)
  t.same(k.state(), { rejected: false })
  k.saw(403)
  now += 5_000
  t.same(k.state(), { rejected: true, status: 403, secondsAgo: 5 })
  k.saw(404)
  t.equal(k.state().rejected, true)
  now += KEY_REJECTED_WINDOW_MS
  t.same(k.state(), { rejected: false }, 'old news after the window')
  k.saw(401)
  k.saw(200)
  t.same(k.state(), { rejected: false })
})

t.test('every route\'s request series is present at zero before any request; build info is exported', async (t) => {
  const gw = await startGateway(t, { CLIENT_KEYS: 'team:tok-signals-0123456789' })
  const samples = parseMetrics(await gw.metrics()).filter((s) => s.name === 'mj_gateway_http_requests_total')
  const has = (method: string, route: string, status: string): boolean =>
    samples.some((s) => s.labels['method'] === method && s.labels['route'] === route && s.labels['status_code'] === status)
  for (const [method, route] of [
    ['GET', '/mj/task/:id/fetch'],
    ['GET', '/healthz'],
    ['GET', '/readyz'],
    ['POST', '/mj/task/list-by-condition'],
    ['POST', '/mj/submit/imagine'],
    ['GET', 'unmatched']
  ] as const) {
    t.ok(has(method, route, route === 'unmatched' ? '404' : '200'), `${method} ${route} present`)
  }
  t.notOk(
    samples.some((s) => s.labels['method'] === 'HEAD'),
    'no HEAD twins'
  )
  const fetch200 = samples.find((s) => s.labels['route'] === '/mj/task/:id/fetch' && s.labels['status_code'] === '200')
  t.equal(fetch200?.value, 0, 'at zero')
  const info = parseMetrics(await gw.metrics()).find((s) => s.name === 'mj_gateway_build_info')
  t.same(info?.labels, { version: VERSION, node_version: process.version })
  t.equal(info?.value, 1)
})

t.test('npm start -- --help and --version answer without starting (and without a key); anything else is refused', async (t) => {
  t.equal(cliAnswer([]), undefined, 'no arguments: start')
  const help = cliAnswer(['--help'])
  t.equal(help?.code, 0)
  for (const v of ENV_VARIABLES) t.match(help?.text, v, `help names ${v}`)
  t.match(help?.text, /--env-file/)
  t.same(cliAnswer(['-v']), { text: VERSION, code: 0 })
  t.equal(cliAnswer(['--port', '80'])?.code, 2)
  // the compiled entry, as npm start runs it
  const main = new URL('../dist/src/main.js', import.meta.url).pathname
  const env = { PATH: process.env['PATH'] ?? '' }
  const version = await promisify(execFile)(process.execPath, [main, '--version'], { env })
  t.equal(version.stdout, `${VERSION}\n`)
  const usage = await promisify(execFile)(process.execPath, [main, '--help'], { env })
  t.match(usage.stdout, /^mj-gateway \d+\.\d+\.\d+/)
  const bad = await promisify(execFile)(process.execPath, [main, '--nope'], { env }).catch((e: { code: number; stderr: string }) => e)
  t.match(bad, { code: 2, stderr: /unknown argument/ })
})
