/**
 * Every shipped alert tells the operator in time (docs/operations-resilience.md, "Alerts"): with the shipped scrape
 * and evaluation interval (15 s), each fires within 2 minutes of its fault starting and clears within 2 minutes of
 * its end. Proved with `promtool test rules` on recorded series, one scenario per fault: healthy for 10 minutes,
 * the fault for 3 minutes, healthy again.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { ALERTS_FILE } from './helpers/deploy-metrics.js'

const PROMTOOL = process.env['PROMTOOL'] ?? 'promtool'
const found = spawnSync(PROMTOOL, ['--version']).status === 0
const skip: string | false = found || process.env['CI'] ? false : `promtool not found (${PROMTOOL}): apt-get install -y --no-install-recommends prometheus`

const STEP_S = 15
const MINUTES = 30
const FAULT_START_MIN = 10
const FAULT_END_MIN = 13
const STEPS = (MINUTES * 60) / STEP_S
const faultAt = (step: number): boolean => step * STEP_S >= FAULT_START_MIN * 60 && step * STEP_S < FAULT_END_MIN * 60

const G = { job: 'gw', instance: 'gw-1:8080' }
const sel = (name: string, labels: Record<string, string> = {}): string =>
  `${name}{${Object.entries({ ...G, ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`

/** a counter's samples: `healthy` per minute outside the fault, `fault` per minute during it */
function counter(healthy: number, fault: number): string {
  const values: number[] = []
  let v = 0
  for (let i = 0; i <= STEPS; i++) {
    values.push(v)
    v += (faultAt(i + 1) ? fault : healthy) / (60 / STEP_S)
  }
  return values.join(' ')
}

/** a gauge's samples; '_' (no sample) where `value` says undefined */
function gauge(healthy: number | undefined, fault: number | undefined): string {
  return Array.from({ length: STEPS + 1 }, (_, i) => (faultAt(i) ? fault : healthy) ?? '_').join(' ')
}

type Series = { series: string; values: string }
const upstream = (outcome: string, healthy: number, fault: number): Series => ({ series: sel('mj_gateway_upstream_requests_total', { outcome }), values: counter(healthy, fault) })
const http = (status: string, healthy: number, fault: number, route = '/mj/task/:id/fetch'): Series => ({
  series: sel('mj_gateway_http_requests_total', { method: 'GET', route, status_code: status }),
  values: counter(healthy, fault)
})
const client = (name: string, status: string, healthy: number, fault: number): Series => ({
  series: sel('mj_gateway_client_requests_total', { client: name, route: '/mj/task/:id/fetch', status_code: status }),
  values: counter(healthy, fault)
})
const lookups = (result: string, healthy: number, fault: number): Series => ({ series: sel('mj_gateway_cache_lookups_total', { result }), values: counter(healthy, fault) })
/** what every scenario has besides its fault: the instance up, cache hits, health checks */
const base = (): Series[] => [
  { series: sel('up'), values: gauge(1, 1) },
  { series: sel('mj_gateway_cache_entries'), values: gauge(100, 100) },
  http('200', 120, 120),
  http('200', 4, 4, '/healthz'),
  lookups('hit', 120, 120)
]

interface Scenario {
  fault: string
  series: Series[]
  alerts: string[]
  /** labels the scenario's alerts carry besides job (and instance for the per-instance ones) */
  labels?: Record<string, string>
}

const SCENARIOS: Scenario[] = [
  {
    fault: 'upstream outage (5xx)',
    series: [...base(), upstream('ok', 60, 0), upstream('http_5xx', 0, 180), http('200', 60, 0), http('502', 0, 60), lookups('miss', 60, 60)],
    alerts: ['MjGatewayUpstreamErrorRatioHigh', 'MjGatewayHigh5xxRatio']
  },
  {
    // attempts end at UPSTREAM_TIMEOUT_MS (10 s): the first timeouts are counted one sample after the hang starts
    fault: 'upstream hang (every attempt times out, clients get 504)',
    series: [...base(), upstream('ok', 60, 0), upstream('timeout', 0, 30), http('200', 60, 0), http('504', 0, 30), lookups('miss', 60, 30)],
    alerts: ['MjGatewayUpstreamErrorRatioHigh', 'MjGatewayUpstreamTimeouts', 'MjGatewayHigh5xxRatio']
  },
  {
    fault: 'upstream rejects the key (401 → 502 MJGW_UPSTREAM_AUTH)',
    series: [...base(), upstream('ok', 60, 0), upstream('http_4xx', 0, 60), http('200', 60, 0), http('502', 0, 60), lookups('miss', 60, 60)],
    alerts: ['MjGatewayUpstreamAuthFailing', 'MjGatewayHigh5xxRatio']
  },
  {
    fault: 'Redis down or hanging (breaker open)',
    series: [...base(), { series: sel('mj_gateway_redis_up'), values: gauge(1, 0) }, upstream('ok', 60, 60), lookups('miss', 60, 60)],
    alerts: ['MjGatewayRedisDown']
  },
  {
    fault: 'an instance cannot be scraped',
    series: [{ series: sel('up'), values: gauge(1, 0) }, { series: sel('mj_gateway_cache_entries'), values: gauge(100, undefined) }],
    alerts: ['MjGatewayInstanceDown']
  },
  {
    fault: 'cache hit ratio collapses',
    series: [
      { series: sel('up'), values: gauge(1, 1) },
      lookups('hit', 600, 60),
      lookups('miss', 120, 600),
      upstream('ok', 120, 600)
    ],
    alerts: ['MjGatewayHitRatioCollapse']
  },
  {
    // healthy: a few 429s spread over clients; the fault: one client polls without backoff and gets nearly all of them
    fault: 'one client runs into its limit (nearly all 429s are its own)',
    series: [
      ...base(),
      client('noisy', '200', 60, 60),
      client('noisy', '429', 1, 120),
      client('web', '200', 60, 60),
      client('web', '429', 1, 2),
      client('jwt', '429', 1, 1),
      http('429', 3, 123)
    ],
    alerts: ['MjGatewayClient429Dominant'],
    labels: { client: 'noisy' }
  }
]

const ALL_ALERTS = (parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { rules: { alert?: string }[] }[] }).groups.flatMap((g) =>
  g.rules.flatMap((r) => (r.alert === undefined ? [] : [r.alert]))
)

t.test('every shipped alert has a fault scenario here', async (t) => {
  t.same([...new Set(SCENARIOS.flatMap((s) => s.alerts))].sort(), [...ALL_ALERTS].sort())
})

t.test('promtool: each alert fires within 2 minutes of its fault and clears within 2 minutes of its end; no other alert fires', { skip }, async (t) => {
  const fired = `${FAULT_START_MIN + 2}m`
  const cleared = `${FAULT_END_MIN + 2}m`
  const tests = SCENARIOS.map((s) => ({
    name: s.fault,
    interval: `${STEP_S}s`,
    input_series: s.series,
    alert_rule_test: ALL_ALERTS.flatMap((alertname) => {
      const expected = s.alerts.includes(alertname)
      const labels = { ...(alertname === 'MjGatewayInstanceDown' || alertname === 'MjGatewayRedisDown' ? G : { job: G.job }), ...(expected ? s.labels : {}) }
      return [
        { eval_time: `${FAULT_START_MIN}m`, alertname, exp_alerts: [] },
        { eval_time: fired, alertname, exp_alerts: expected ? [{ exp_labels: labels }] : [] },
        { eval_time: cleared, alertname, exp_alerts: [] }
      ]
    })
  }))
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-alert-timing-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // promtool compares labels and annotations: the scenarios are about timing, so they run on the rules' expressions and `for`
  const rules = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { rules: Record<string, unknown>[] }[] }
  for (const g of rules.groups) for (const r of g.rules) {
    delete r['annotations']
    delete r['labels']
  }
  writeFileSync(join(dir, 'alerts.yml'), stringify(rules))
  writeFileSync(join(dir, 'timing.test.yml'), stringify({ rule_files: ['alerts.yml'], evaluation_interval: `${STEP_S}s`, tests }))
  const r = spawnSync(PROMTOOL, ['test', 'rules', 'timing.test.yml'], { cwd: dir, encoding: 'utf8' })
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`)
})
