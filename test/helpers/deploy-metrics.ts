/**
 * Which metrics the operator-facing deploy files (Grafana dashboard, Prometheus alert rules) use.
 *
 * test/deploy-files.test.ts checks those names against docs/metrics.md and prom-client's defaults.
 * A test against a running gateway can assert that its /metrics exports every name
 * metricNamesUsedByDeployFiles() returns. It must start the gateway with REDIS_URL set, or leave out
 * REDIS_ONLY_METRIC_NAMES.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const DASHBOARD_FILE = fileURLToPath(new URL('../../config/grafana/mj-gateway.json', import.meta.url))
export const ALERTS_FILE = fileURLToPath(new URL('../../config/prometheus/alerts.yml', import.meta.url))

/** docs/metrics.md: the gateway's own metrics (base names; histograms without _bucket/_sum/_count) */
export const CONTRACT_METRIC_NAMES: readonly string[] = [
  'mj_gateway_http_requests_total',
  'mj_gateway_http_request_duration_seconds',
  'mj_gateway_cache_lookups_total',
  'mj_gateway_cache_entries',
  'mj_gateway_cache_size_bytes',
  'mj_gateway_cache_evictions_total',
  'mj_gateway_upstream_requests_total',
  'mj_gateway_upstream_request_duration_seconds',
  'mj_gateway_upstream_inflight',
  'mj_gateway_redis_up',
  // docs/tenancy.md
  'mj_gateway_client_requests_total',
  'mj_gateway_client_submits_total',
  'mj_gateway_ownership_denied_total',
  // docs/images.md §8
  'mj_gateway_images_archived_total',
  'mj_gateway_image_store_bytes',
  'mj_gateway_image_requests_total'
]

/** exported with samples only once a client has submitted something, or with ownership on (CONTRACT §9) */
export const TENANCY_ONLY_METRIC_NAMES: readonly string[] = ['mj_gateway_client_submits_total', 'mj_gateway_ownership_denied_total']

/** exported only when the gateway runs with REDIS_URL (docs/metrics.md §5) */
export const REDIS_ONLY_METRIC_NAMES: readonly string[] = ['mj_gateway_redis_up']

/** names the deploy files are allowed to use that the gateway does not export itself */
export const PROMETHEUS_SYNTHETIC_METRIC_NAMES: readonly string[] = ['up']

// A metric name of ours or of prom-client's defaults. Lookbehind and lookahead keep it from matching
// inside a longer identifier.
const METRIC_NAME = /(?<![A-Za-z0-9_:])(?:mj_gateway|nodejs|process)_[A-Za-z0-9_:]*[A-Za-z0-9]/g

/** the histogram or summary a series belongs to: `x_bucket`, `x_sum` and `x_count` become `x` */
export function baseMetricName(series: string): string {
  return series.replace(/_(?:bucket|sum|count)$/, '')
}

/** base names of the gateway and process metrics a PromQL expression reads (`up` is not included) */
export function metricNamesIn(expr: string): string[] {
  return [...new Set([...expr.matchAll(METRIC_NAME)].map((m) => baseMetricName(m[0])))].sort()
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isRecord) : []
}

export interface DashboardQuery {
  /** panel title, or `variable $name` */
  where: string
  expr: string
}

/** every PromQL query of the dashboard: panel targets (rows' nested panels included) and query variables */
export function dashboardQueries(dashboard: unknown = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8'))): DashboardQuery[] {
  const out: DashboardQuery[] = []
  if (!isRecord(dashboard)) return out
  const walk = (panels: unknown): void => {
    for (const panel of records(panels)) {
      const where = typeof panel['title'] === 'string' ? panel['title'] : `panel ${String(panel['id'])}`
      for (const target of records(panel['targets'])) {
        if (typeof target['expr'] === 'string') out.push({ where, expr: target['expr'] })
      }
      walk(panel['panels'])
    }
  }
  walk(dashboard['panels'])
  const templating = dashboard['templating']
  for (const variable of records(isRecord(templating) ? templating['list'] : undefined)) {
    if (variable['type'] !== 'query') continue
    const query = variable['query']
    const expr = typeof query === 'string' ? query : isRecord(query) && typeof query['query'] === 'string' ? query['query'] : undefined
    if (expr !== undefined) out.push({ where: `variable $${String(variable['name'])}`, expr })
  }
  return out
}

export interface AlertRule {
  alert: string
  expr: string
  for?: string
  labels: Record<string, unknown>
  annotations: Record<string, unknown>
}

/** the alerting rules of config/prometheus/alerts.yml (recording rules are left out) */
export function alertRules(text: string = readFileSync(ALERTS_FILE, 'utf8')): AlertRule[] {
  const doc: unknown = parse(text)
  const rules: AlertRule[] = []
  for (const group of records(isRecord(doc) ? doc['groups'] : undefined)) {
    for (const rule of records(group['rules'])) {
      if (typeof rule['alert'] !== 'string' || typeof rule['expr'] !== 'string') continue
      rules.push({
        alert: rule['alert'],
        expr: rule['expr'],
        ...(typeof rule['for'] === 'string' ? { for: rule['for'] } : {}),
        labels: isRecord(rule['labels']) ? rule['labels'] : {},
        annotations: isRecord(rule['annotations']) ? rule['annotations'] : {}
      })
    }
  }
  return rules
}

/**
 * Base names of every gateway and process metric that the Grafana dashboard and the alert rules query,
 * sorted. `up` is left out: Prometheus makes it, the gateway does not export it.
 */
export function metricNamesUsedByDeployFiles(): string[] {
  const exprs = [...dashboardQueries().map((q) => q.expr), ...alertRules().map((r) => r.expr)]
  return [...new Set(exprs.flatMap(metricNamesIn))].sort()
}
