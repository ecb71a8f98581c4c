/**
 * The one place the gateway leans on prom-client internals: its http histogram (src/metrics/gateway-metrics.ts)
 * overrides Histogram#getForPromString, which the registry calls when it renders, so that the request path only adds
 * to plain numbers. prom-client is pinned to one exact version for this; these tests fail when an upgrade changes it.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import t from 'tap'
import { Histogram, Registry } from 'prom-client'
import { GatewayMetrics } from '../src/metrics/gateway-metrics.js'

const require = createRequire(import.meta.url)
const NAME = 'mj_gateway_http_request_duration_seconds'

t.test('prom-client is pinned to the exact version installed', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> }
  const installed = (require('prom-client/package.json') as { version: string }).version
  t.match(pkg.dependencies['prom-client'], /^\d+\.\d+\.\d+$/, 'an exact version, no range')
  t.equal(pkg.dependencies['prom-client'], installed)
})

t.test('the registry renders a histogram through getForPromString, and get() builds on it', async (t) => {
  // not in prom-client's typings: an internal
  t.type((Histogram.prototype as unknown as Record<string, unknown>)['getForPromString'], 'function')
  const calls: string[] = []
  const registry = new Registry()
  class Probe extends Histogram {
    async getForPromString(): Promise<object> {
      calls.push('getForPromString')
      return { name: 'probe', help: 'probe', type: 'histogram', values: [{ labels: { le: 1 }, sharedLabels: {}, value: 7, metricName: 'probe_bucket' }], aggregator: 'sum' }
    }
  }
  new Probe({ name: 'probe', help: 'probe', buckets: [1], registers: [registry] })
  t.match(await registry.metrics(), /^probe_bucket\{le="1"\} 7$/m)
  t.match(await registry.getMetricsAsJSON(), [{ name: 'probe', values: [{ value: 7 }] }])
  t.same(calls, ['getForPromString', 'getForPromString'])
})

t.test('the http histogram as the registry renders it: cumulative buckets, sum and count per series', async (t) => {
  const m = new GatewayMetrics({ cache: { entries: () => 0, bytes: () => 0 }, redis: false })
  const s = m.http('GET', '/x', 200)
  s.observe(0.0002)
  s.observe(0.003)
  s.observe(100)
  const text = await m.registry.metrics()
  const line = (le: string): string => `${NAME}_bucket{le="${le}",method="GET",route="/x",status_code="200"}`
  t.match(text, `${line('0.0001')} 0\n`)
  t.match(text, `${line('0.00025')} 1\n`)
  t.match(text, `${line('0.005')} 2\n`)
  t.match(text, `${line('30')} 2\n`)
  t.match(text, `${line('+Inf')} 3\n`)
  t.match(text, `${NAME}_sum{method="GET",route="/x",status_code="200"} 100.0032\n`)
  t.match(text, `${NAME}_count{method="GET",route="/x",status_code="200"} 3\n`)
  t.match(text, /mj_gateway_http_requests_total\{method="GET",route="\/x",status_code="200"\} 3\n/)
})
