/**
 * Checks the operator-facing deploy files without Docker: config/docker-compose.yml, Dockerfile,
 * .dockerignore, the Grafana dashboard and provisioning, and the Prometheus config and alert rules.
 *
 * The promtool checks need `promtool` (Debian: `apt-get install -y --no-install-recommends prometheus`;
 * or set PROMTOOL=/path/to/promtool). Without it they are skipped locally and fail when CI is set.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, posix, relative, resolve } from 'node:path'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { parse, stringify } from 'yaml'
import { ENV_VARIABLES, loadConfig } from '../src/config.js'
import { trustFunction } from '../src/http/client-address.js'
import {
  ALERTS_FILE,
  CONTRACT_METRIC_NAMES,
  DASHBOARD_FILE,
  PROMETHEUS_SYNTHETIC_METRIC_NAMES,
  REPO_ROOT,
  alertRules,
  dashboardQueries,
  metricNamesIn,
  metricNamesUsedByDeployFiles
} from './helpers/deploy-metrics.js'

const root = (...p: string[]): string => join(REPO_ROOT, ...p)
const read = (...p: string[]): string => readFileSync(root(...p), 'utf8')

// ------------------------------------------------------------------------------------------------
// Small typed accessors for parsed YAML/JSON (no `any`).

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const obj = (v: unknown): Obj => (isObj(v) ? v : {})
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

// ------------------------------------------------------------------------------------------------
// Metric names the deploy files may use: docs/metrics.md plus prom-client's default metrics, the latter
// taken from the prom-client the gateway ships, so a rename there fails this test.

function promClientDefaultMetricNames(): string[] {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const names = registry.getMetricsAsArray().map((m) => m.name)
  registry.clear()
  return names
}

export const DEPLOY_METRIC_NAMES: readonly string[] = [
  ...new Set([...CONTRACT_METRIC_NAMES, ...promClientDefaultMetricNames(), ...PROMETHEUS_SYNTHETIC_METRIC_NAMES])
].sort()

/** docs/metrics.md labels per metric; Prometheus adds job and instance, histograms have le */
const CONTRACT_LABELS: Record<string, readonly string[]> = {
  mj_gateway_http_requests_total: ['method', 'route', 'status_code'],
  mj_gateway_http_request_duration_seconds: ['method', 'route', 'status_code', 'le'],
  mj_gateway_cache_lookups_total: ['result'],
  mj_gateway_upstream_requests_total: ['outcome'],
  mj_gateway_upstream_request_duration_seconds: ['outcome', 'le'],
  // CONTRACT §9
  mj_gateway_client_requests_total: ['client', 'route', 'status_code'],
  mj_gateway_client_submits_total: ['client', 'action'],
  mj_gateway_ownership_denied_total: ['route'],
  mj_gateway_images_archived_total: ['outcome'],
  mj_gateway_image_requests_total: ['result']
}
const TARGET_LABELS = ['job', 'instance']
const LABEL_VALUES: Record<string, readonly string[]> = {
  result: ['hit', 'miss', 'coalesced', 'stale', 'hit_shared', 'fetched', 'gone'],
  outcome: ['ok', 'http_4xx', 'http_5xx', 'timeout', 'error', 'not_allowed', 'too_large', 'not_image', 'gone', 'store_error']
}
const ALL_LABELS = new Set([...Object.values(CONTRACT_LABELS).flat(), ...TARGET_LABELS])

/** problems with the label matchers and `by (...)` clauses of one PromQL expression */
function labelProblems(expr: string): string[] {
  const problems: string[] = []
  for (const sel of expr.matchAll(/(?<![A-Za-z0-9_:])((?:mj_gateway|nodejs|process)_[A-Za-z0-9_:]*)\s*\{([^}]*)\}/g)) {
    const series = sel[1] ?? ''
    const base = series.replace(/_(?:bucket|sum|count)$/, '')
    const allowed = [...(CONTRACT_LABELS[base] ?? []), ...TARGET_LABELS, ...(series.endsWith('_bucket') ? ['le'] : [])]
    for (const m of (sel[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      const [, label = '', op = '', value = ''] = m
      if (!allowed.includes(label)) problems.push(`${series} has no label "${label}"`)
      const known = LABEL_VALUES[label]
      if (known === undefined || value.includes('$')) continue
      const values = op === '=~' || op === '!~' ? value.split('|') : [value]
      for (const v of values) if (!known.includes(v)) problems.push(`${series}{${label}${op}"${value}"}: "${v}" is not a value of ${label}`)
    }
  }
  for (const by of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const label of (by[1] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')) {
      if (!ALL_LABELS.has(label)) problems.push(`grouping by unknown label "${label}"`)
    }
  }
  return problems
}

// ------------------------------------------------------------------------------------------------
// promtool

const PROMTOOL = process.env['PROMTOOL'] ?? 'promtool'
const promtoolFound = ((): boolean => {
  const r = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' })
  return r.error === undefined && r.status === 0
})()
const promtoolSkip: string | false =
  promtoolFound || process.env['CI']
    ? false
    : `promtool not found (${PROMTOOL}); install it with \`apt-get install -y --no-install-recommends prometheus\` ` +
      'or set PROMTOOL. These checks are skipped locally and fail in CI.'

function promtool(args: string[], cwd: string): { ok: boolean; output: string } {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 60_000 })
  const missing = promtoolFound ? '' : `promtool not found (${PROMTOOL}) and CI is set: install it (apt-get install -y --no-install-recommends prometheus) or set PROMTOOL\n`
  const output = `${missing}$ ${PROMTOOL} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`
  return { ok: r.error === undefined && r.status === 0, output }
}

function tempDir(tt: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mj-gateway-deploy-'))
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// ------------------------------------------------------------------------------------------------
// Parsed files

const compose = obj(parse(read('config', 'docker-compose.yml'), { merge: true }))
const services = obj(compose['services'])
const gatewayServices = Object.entries(services).filter(([, s]) => isObj(s) && s['build'] !== undefined)
const promConfig = obj(parse(read('config', 'prometheus', 'prometheus.yml')))
const gatewayJob = obj(arr(promConfig['scrape_configs']).find((c) => obj(c)['job_name'] === 'mj-gateway'))
const dashboardText = readFileSync(DASHBOARD_FILE, 'utf8')

function envOf(service: unknown): Record<string, string> {
  const env = obj(service)['environment']
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((e) => String(e)).map((e) => [e.split('=')[0] ?? '', e.includes('=') ? e.slice(e.indexOf('=') + 1) : '']))
  }
  return Object.fromEntries(Object.entries(obj(env)).map(([k, v]) => [k, v === null ? '' : String(v)]))
}

/** `host:container[/proto]`, `ip:host:container` or a long-syntax port: the container port */
function containerPorts(service: unknown): number[] {
  return arr(obj(service)['ports']).map((p) => (isObj(p) ? Number(p['target']) : Number(String(p).split('/')[0]?.split(':').pop())))
}

/** short-syntax volumes as [host path relative to config/, container path] */
function volumesOf(service: unknown): [string, string][] {
  return arr(obj(service)['volumes'])
    .map((v) => String(v).split(':'))
    .filter((parts) => (parts[0] ?? '').startsWith('.'))
    .map((parts) => [posix.normalize(parts[0] ?? ''), parts[1] ?? ''])
}

interface Instruction {
  keyword: string
  args: string
}

/** Dockerfile instructions, continuation lines joined, comments and parser directives dropped */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    if (line.trimStart().startsWith('#')) continue
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' '
      continue
    }
    current += line
    const m = /^\s*([A-Za-z]+)\s+(.*)$/s.exec(current)
    if (m) out.push({ keyword: (m[1] ?? '').toUpperCase(), args: (m[2] ?? '').trim() })
    current = ''
  }
  return out
}

const dockerfile = parseDockerfile(read('Dockerfile'))
const lastFrom = dockerfile.map((i) => i.keyword).lastIndexOf('FROM')
const finalStage = dockerfile.slice(lastFrom)

// ------------------------------------------------------------------------------------------------

t.test('docker-compose.yml: gateway services set only variables the gateway reads', async (t) => {
  t.ok(isObj(compose['services']), 'compose file parses and has services')
  t.same(gatewayServices.map(([name]) => name).sort(), ['gateway-1', 'gateway-2'], 'two gateway replicas built from the Dockerfile')
  for (const [name, service] of gatewayServices) {
    const build = obj(obj(service)['build'])
    t.equal(resolve(root('config'), str(build['context']) ?? ''), resolve(REPO_ROOT), `${name}: build context is the repository`)
    t.equal(build['dockerfile'] ?? 'Dockerfile', 'Dockerfile', `${name}: builds ./Dockerfile`)
    t.notOk(obj(service)['env_file'], `${name}: no env_file (its variables would escape this check)`)
    const env = envOf(service)
    t.ok(Object.keys(env).length > 0, `${name}: has an environment`)
    for (const variable of Object.keys(env)) {
      t.ok(ENV_VARIABLES.includes(variable), `${name}: ${variable} is a variable src/config.ts reads`)
    }
    t.notOk('UPSTREAM_API_KEY' in env, `${name}: the upstream key comes from a secret file, never inline`)
    for (const secret of ['METRICS_TOKEN', 'CLIENT_KEYS']) {
      if (secret in env) t.match(env[secret], /^\$\{[A-Z_]+(?::?-)?\}$/, `${name}: ${secret} comes from the host environment, not the file`)
    }
  }
})

t.test('docker-compose.yml: the gateways trust their own balancer (TRUST_PROXY), not the whole internet', async (t) => {
  for (const [name, service] of gatewayServices) {
    const value = /^\$\{TRUST_PROXY:-(.+)\}$/.exec(envOf(service)['TRUST_PROXY'] ?? '')?.[1] ?? ''
    const trust = trustFunction(loadConfig({ UPSTREAM_API_KEY: 'k', TRUST_PROXY: value }).trustProxy)
    t.ok(trust !== false, `${name}: TRUST_PROXY is not false by default`)
    if (trust === false) continue
    t.ok(trust('172.18.0.1', 0), `${name}: a balancer on the compose network is trusted`)
    t.ok(trust('127.0.0.1', 0), `${name}: a balancer on the host is trusted`)
    t.notOk(trust('203.0.113.7', 0), `${name}: a public address is not`)
  }
})

t.test('docker-compose.yml: secret, Redis and published ports are wired up', async (t) => {
  const topSecrets = obj(compose['secrets'])
  for (const [name, service] of gatewayServices) {
    const env = envOf(service)
    const keyFile = env['UPSTREAM_API_KEY_FILE'] ?? ''
    const m = /^\/run\/secrets\/([A-Za-z0-9_.-]+)$/.exec(keyFile)
    t.ok(m, `${name}: UPSTREAM_API_KEY_FILE is a docker secret path (${keyFile})`)
    const secretName = m?.[1] ?? ''
    const mounted = arr(obj(service)['secrets']).map((s) => (isObj(s) ? `${String(s['source'])}` : String(s)))
    t.ok(mounted.includes(secretName), `${name}: secret ${secretName} is mounted`)
    t.type(obj(topSecrets[secretName])['file'], 'string', `secret ${secretName} is read from a file`)

    const redisHost = new URL(env['REDIS_URL'] ?? 'redis://missing').hostname
    t.match(str(obj(services[redisHost])['image']) ?? '', /^redis:7/, `${name}: REDIS_URL points at the redis:7 service`)
    t.same(containerPorts(service), [8080], `${name}: publishes the gateway port 8080`)
  }
})

t.test('Dockerfile: multi-stage, non-root, health-checked, starts like `npm start`', async (t) => {
  const froms = dockerfile.filter((i) => i.keyword === 'FROM')
  t.ok(froms.length >= 2, 'multi-stage build')
  const buildRuns = dockerfile.slice(0, lastFrom).filter((i) => i.keyword === 'RUN').map((i) => i.args)
  t.ok(buildRuns.some((a) => /\bnpm ci\b/.test(a)), 'build stage runs npm ci')
  t.ok(buildRuns.some((a) => /\bnpm run build\b/.test(a)), 'build stage runs npm run build')

  const finalRuns = finalStage.filter((i) => i.keyword === 'RUN').map((i) => i.args)
  t.ok(finalRuns.some((a) => /\bnpm ci\b.*--omit=dev/.test(a)), 'final stage installs production dependencies only')
  t.ok(finalStage.some((i) => i.keyword === 'COPY' && /--from=\S+\s+\S*dist\b/.test(i.args)), 'final stage copies dist/ from the build stage')

  const users = finalStage.filter((i) => i.keyword === 'USER').map((i) => i.args.split(':')[0] ?? '')
  t.ok(users.length > 0, 'final stage sets USER')
  t.notOk(['root', '0'].includes(users.at(-1) ?? 'root'), `runs as a non-root user (${users.at(-1) ?? 'none'})`)

  const healthchecks = finalStage.filter((i) => i.keyword === 'HEALTHCHECK')
  t.equal(healthchecks.length, 1, 'one HEALTHCHECK')
  t.match(healthchecks[0]?.args ?? '', /CMD .*\/healthz/, 'the HEALTHCHECK hits /healthz')
  t.notMatch(healthchecks[0]?.args ?? '', /\b(curl|wget)\b/, 'the HEALTHCHECK needs no curl/wget (slim images have none)')

  const cmds = finalStage.filter((i) => i.keyword === 'CMD')
  const cmd: unknown = JSON.parse(cmds.at(-1)?.args ?? 'null')
  const start = str(obj(obj(JSON.parse(read('package.json')))['scripts'])['start'])
  t.ok(Array.isArray(cmd), 'CMD is in exec form (node is PID 1 and gets SIGTERM)')
  t.equal(arr(cmd).join(' '), start, 'CMD equals the package.json start script')

  const env = finalStage.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ')
  t.match(env, /\bNODE_ENV=production\b/, 'NODE_ENV=production')
  t.match(env, /\bPORT=8080\b/, 'PORT=8080')
  t.ok(finalStage.some((i) => i.keyword === 'EXPOSE' && /^8080\b/.test(i.args)), 'EXPOSE 8080')
})

t.test('.dockerignore: an allow-list that admits every file the image build needs', async (t) => {
  const patterns = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  t.equal(patterns[0], '*', 'starts by excluding everything')
  const allowed = new Set(patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\/$/, '')))
  for (const secretish of ['node_modules', 'config', 'dist', '.git', '.env', 'test']) {
    t.notOk(allowed.has(secretish), `${secretish} stays out of the build context`)
  }
  const copied = dockerfile
    .filter((i) => i.keyword === 'COPY' && !/--from=/.test(i.args))
    .flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1))
    .map((p) => posix.normalize(p).replace(/\/$/, ''))
  t.ok(copied.length > 0, 'the Dockerfile copies from the context')
  for (const path of copied) t.ok(allowed.has(path), `COPY ${path} is admitted by .dockerignore`)

  // tsc follows relative imports: a file under src/ or bench/ that imports from test/ (say) would
  // build here and break inside Docker.
  const sources: string[] = []
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return
    for (const entry of readdirSync(dir)) {
      const full = join(dir, entry)
      if (statSync(full).isDirectory()) walk(full)
      else if (/\.(?:ts|mts|cts)$/.test(entry)) sources.push(full)
    }
  }
  for (const dir of copied) if (existsSync(root(dir)) && statSync(root(dir)).isDirectory()) walk(root(dir))
  const outside: string[] = []
  for (const file of sources) {
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:\bfrom|\bimport\s*\(?)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = relative(REPO_ROOT, resolve(dirname(file), m[1] ?? '')).split(/[\\/]/)
      const admitted = target.some((_, i) => allowed.has(target.slice(0, i + 1).join('/')))
      if (!admitted) outside.push(`${relative(REPO_ROOT, file)} imports ${m[1] ?? ''}`)
    }
  }
  t.same(outside, [], 'no compiled file imports from outside the build context')
})

t.test('dashboard: Grafana 10+ JSON, every panel described and bound to ${datasource}', async (t) => {
  const dashboard = obj(JSON.parse(dashboardText))
  t.ok(Number(dashboard['schemaVersion']) >= 38, `schemaVersion ${String(dashboard['schemaVersion'])} >= 38 (Grafana 10)`)
  t.equal(dashboard['uid'], 'mj-gateway', 'stable uid for links')
  const hardCoded: unknown[] = []
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (isObj(v)) {
      if (v['type'] === 'prometheus' && 'uid' in v && v['uid'] !== '${datasource}') hardCoded.push(v)
      Object.values(v).forEach(walk)
    }
  }
  walk(dashboard)
  t.same(hardCoded, [], 'no hard-coded Prometheus data source uid')
  t.notMatch(dashboardText, /DS_PROMETHEUS|__inputs/, 'no import-time data source inputs')

  const variables = arr(obj(dashboard['templating'])['list']).map(obj)
  const ds = variables.find((v) => v['name'] === 'datasource')
  t.equal(ds?.['type'], 'datasource', '$datasource is a data source variable')
  t.equal(ds?.['query'], 'prometheus', '$datasource lists Prometheus data sources')
  const scope = variables.filter((v) => v['name'] === 'instance' || v['name'] === 'job')
  t.ok(scope.length > 0, 'an instance or job variable')
  for (const v of scope) t.same(v['datasource'], { type: 'prometheus', uid: '${datasource}' }, `$${String(v['name'])} queries through $datasource`)

  const panels = arr(dashboard['panels']).map(obj)
  const ids = panels.map((p) => p['id'])
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  const rows = panels.filter((p) => p['type'] === 'row').map((p) => p['title'])
  t.same(rows, ['Traffic', 'Latency', 'Cache', 'Upstream health', 'Process', 'Images', 'Clients'], 'rows in order')
  for (const p of panels) {
    const title = str(p['title']) ?? `panel ${String(p['id'])}`
    const pos = obj(p['gridPos'])
    t.ok(['h', 'w', 'x', 'y'].every((k) => typeof pos[k] === 'number') && Number(pos['x']) + Number(pos['w']) <= 24, `${title}: gridPos fits the 24-column grid`)
    if (p['type'] === 'row') {
      t.same(arr(p['targets']), [], `row ${title} has no queries`)
      continue
    }
    t.ok((str(p['description']) ?? '').length >= 40, `${title}: has a description`)
    t.same(p['datasource'], { type: 'prometheus', uid: '${datasource}' }, `${title}: panel data source is $datasource`)
    const targets = arr(p['targets']).map(obj)
    t.ok(targets.length > 0, `${title}: has queries`)
    for (const target of targets) {
      t.same(target['datasource'], { type: 'prometheus', uid: '${datasource}' }, `${title} ${String(target['refId'])}: query data source is $datasource`)
      t.match(str(target['expr']) ?? '', /\$job|\$instance/, `${title} ${String(target['refId'])}: scoped by the job/instance variables`)
    }
  }
})

t.test('docs/metrics.md §9 dashboard and alerts use only documented metrics, labels and label values', async (t) => {
  const queries = [...dashboardQueries().map((q) => ({ where: `dashboard: ${q.where}`, expr: q.expr })), ...alertRules().map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }))]
  t.ok(queries.length > 20, `${queries.length} queries found`)
  for (const { where, expr } of queries) {
    const names = [...metricNamesIn(expr), ...(/(?<![A-Za-z0-9_:])up\s*[{[]/.test(expr) ? ['up'] : [])]
    t.ok(names.length > 0, `${where}: reads at least one metric`)
    for (const name of names) t.ok(DEPLOY_METRIC_NAMES.includes(name), `${where}: ${name} is a documented or prom-client metric`)
    t.same(labelProblems(expr), [], `${where}: labels and values are documented ones`)
  }
  for (const name of CONTRACT_METRIC_NAMES) {
    t.ok(metricNamesUsedByDeployFiles().includes(name), `${name} is shown or alerted on`)
  }
})

t.test('metricNamesUsedByDeployFiles(): what a running gateway must export', async (t) => {
  const names = metricNamesUsedByDeployFiles()
  t.same(names, [...new Set(names)].sort(), 'sorted, no duplicates')
  t.notOk(names.some((n) => /_(?:bucket|sum|count)$/.test(n)), 'base names (no histogram suffixes)')
  t.notOk(names.includes('up'), '`up` is left out (Prometheus makes it)')
  for (const n of ['mj_gateway_http_request_duration_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes', 'process_resident_memory_bytes']) {
    t.ok(names.includes(n), `includes ${n}`)
  }
  t.same(metricNamesIn('histogram_quantile(0.9, sum by (le) (rate(mj_gateway_x_seconds_bucket[5m]))) / up'), ['mj_gateway_x_seconds'], 'extractor strips _bucket and ignores up')
})

const REQUIRED_ALERTS = [
  'MjGatewayUpstreamErrorRatioHigh',
  'MjGatewayUpstreamTimeouts',
  'MjGatewayUpstreamAuthFailing',
  'MjGatewayHitRatioCollapse',
  'MjGatewayHigh5xxRatio',
  'MjGatewayInstanceDown',
  'MjGatewayRedisDown',
  'MjGatewayClient429Dominant'
]

t.test('alerts.yml: the required alerts, each with for, severity, summary and a runbook', async (t) => {
  const rules = alertRules()
  t.same(rules.map((r) => r.alert).sort(), [...REQUIRED_ALERTS].sort(), 'exactly the required alerts')
  for (const rule of rules) {
    t.match(rule.for ?? '', /^\d+[smh]$/, `${rule.alert}: has for:`)
    t.ok(['warning', 'critical'].includes(String(rule.labels['severity'])), `${rule.alert}: severity is warning or critical`)
    t.ok((str(rule.annotations['summary']) ?? '').length > 10, `${rule.alert}: has a summary`)
    t.ok((str(rule.annotations['description']) ?? '').length > 200, `${rule.alert}: has a runbook-style description`)
  }
  const auth = rules.find((r) => r.alert === 'MjGatewayUpstreamAuthFailing')
  t.match(auth?.expr ?? '', /outcome="http_4xx"/, 'auth alert reads upstream 4xx')
  t.match(auth?.expr ?? '', /status_code="502"/, 'auth alert reads gateway 502s')
  const down = rules.find((r) => r.alert === 'MjGatewayInstanceDown')?.expr ?? ''
  t.match(down, /\bup\s*==\s*0\b/, 'instance down is up == 0')
  for (const rule of rules) t.notMatch(rule.expr, /job\s*=~?\s*"/, `${rule.alert}: names no job`)
})

t.test('prometheus.yml: scrapes the compose gateways with the metrics token and loads alerts.yml', async (t) => {
  t.ok(arr(promConfig['rule_files']).includes('alerts.yml'), 'rule_files has alerts.yml')
  t.equal(gatewayJob['job_name'], 'mj-gateway', 'job mj-gateway')
  t.equal(gatewayJob['metrics_path'] ?? '/metrics', '/metrics', 'scrapes /metrics')
  const auth = obj(gatewayJob['authorization'])
  t.equal(auth['type'], 'Bearer', 'Bearer authorization (METRICS_TOKEN)')
  t.equal(auth['credentials_file'], 'mj-gateway-metrics-token', 'token read from a file beside prometheus.yml')
  t.notOk('credentials' in auth, 'no inline token')

  const targets = arr(gatewayJob['static_configs']).flatMap((c) => arr(obj(c)['targets'])).map(String)
  t.same(targets.sort(), gatewayServices.map(([name]) => `${name}:8080`).sort(), 'targets are the compose gateway services on the container port')

  const mounts = volumesOf(services['prometheus'])
  t.ok(mounts.some(([host, container]) => host === 'prometheus' && container === '/etc/prometheus'), 'compose mounts ./prometheus at /etc/prometheus')
  t.ok(existsSync(root('config', 'prometheus', 'alerts.yml')), 'alerts.yml sits beside prometheus.yml')
  t.equal(dirname(String(auth['credentials_file'])), '.', 'the token file lives in the mounted directory')
})

t.test('Grafana provisioning: data source and dashboard provider match the compose mounts', async (t) => {
  const grafana = services['grafana']
  const mounts = volumesOf(grafana)
  t.ok(mounts.some(([host, c]) => host === 'grafana/provisioning' && c === '/etc/grafana/provisioning'), 'provisioning directory mounted')
  const dashboardMount = mounts.find(([host]) => host === 'grafana/mj-gateway.json')
  t.ok(dashboardMount, 'dashboard JSON mounted')

  const provider = obj(arr(obj(parse(read('config', 'grafana', 'provisioning', 'dashboards', 'mj-gateway.yml')))['providers'])[0])
  t.equal(provider['type'], 'file', 'file provider')
  t.equal(obj(provider['options'])['path'], posix.dirname(dashboardMount?.[1] ?? ''), 'provider reads the directory the dashboard is mounted in')

  const source = obj(arr(obj(parse(read('config', 'grafana', 'provisioning', 'datasources', 'prometheus.yml')))['datasources'])[0])
  t.equal(source['type'], 'prometheus', 'a Prometheus data source')
  t.equal(source['isDefault'], true, 'the default one (the $datasource variable starts on it)')
  const url = new URL(str(source['url']) ?? 'http://missing')
  t.ok(isObj(services[url.hostname]), `its URL host ${url.hostname} is a compose service`)
  t.equal(url.port, '9090', 'on the Prometheus port')
})

t.test('promtool check rules config/prometheus/alerts.yml', { skip: promtoolSkip }, async (t) => {
  const r = promtool(['check', 'rules', '--lint-fatal', 'alerts.yml'], dirname(ALERTS_FILE))
  t.ok(r.ok, r.output)
})

t.test('promtool check config config/prometheus/prometheus.yml', { skip: promtoolSkip }, async (t) => {
  // As shipped, on a machine without any token of its own: the token file is the repository's empty one beside it.
  const asIs = promtool(['check', 'config', '--lint-fatal', 'prometheus.yml'], root('config', 'prometheus'))
  t.ok(asIs.ok, asIs.output)
  t.equal(read('config', 'prometheus', 'mj-gateway-metrics-token'), '', 'the shipped token file is empty')

  // In a copy of the directory elsewhere too (the path is relative to prometheus.yml).
  const dir = tempDir(t)
  copyFileSync(root('config', 'prometheus', 'prometheus.yml'), join(dir, 'prometheus.yml'))
  writeFileSync(join(dir, 'mj-gateway-metrics-token'), 'test-token\n')
  copyFileSync(ALERTS_FILE, join(dir, 'alerts.yml'))
  const full = promtool(['check', 'config', '--lint-fatal', 'prometheus.yml'], dir)
  t.ok(full.ok, full.output)
})

t.test('dashboard queries are valid PromQL (promtool, as recording rules)', { skip: promtoolSkip }, async (t) => {
  const dir = tempDir(t)
  const rules = dashboardQueries()
    .filter((q) => !q.expr.startsWith('label_values('))
    .map((q, i) => ({
      record: `dashboard:query_${i}`,
      expr: q.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', 'mj-gateway').replaceAll('$instance', '.*')
    }))
  t.ok(rules.length > 15, `${rules.length} panel queries`)
  writeFileSync(join(dir, 'dashboard-rules.yml'), stringify({ groups: [{ name: 'dashboard', rules }] }))
  const r = promtool(['check', 'rules', 'dashboard-rules.yml'], dir)
  t.ok(r.ok, r.output)
})

// promtool unit tests: the alerts fire on the situation they describe and stay quiet on look-alikes.
const G = { job: 'mj-gateway', instance: 'gateway-1:8080' }
const sel = (name: string, labels: Record<string, string> = {}): string =>
  `${name}{${Object.entries({ ...G, ...labels }).map(([k, v]) => `${k}="${v}"`).join(',')}}`
// samples every 15 s (the shipped scrape interval): the rules' 1m windows need several per window
const upstream = (outcome: string, perMinute: number, minutes = 30): { series: string; values: string } => ({
  series: sel('mj_gateway_upstream_requests_total', { outcome }),
  values: `0+${perMinute / 4}x${minutes * 4}`
})
const http = (route: string, status: string, perMinute: number, minutes = 30): { series: string; values: string } => ({
  series: sel('mj_gateway_http_requests_total', { method: 'GET', route, status_code: status }),
  values: `0+${perMinute / 4}x${minutes * 4}`
})
const FETCH = '/mj/task/:id/fetch'
const clientRequests = (client: string, status: string, perMinute: number, minutes = 30, values?: string): { series: string; values: string } => ({
  series: sel('mj_gateway_client_requests_total', { client, route: FETCH, status_code: status }),
  values: values ?? `0+${perMinute}x${minutes}`
})
const jobAlert = (severity: string): { exp_labels: Record<string, string> } => ({ exp_labels: { severity, service: 'mj-gateway', job: 'mj-gateway' } })

t.test('promtool test rules: alert scenarios', { skip: promtoolSkip }, async (t) => {
  const tests = [
    {
      name: 'key revoked: upstream 401 on every attempt, clients get 502 on fetch, cached tasks still 200',
      interval: '15s',
      input_series: [upstream('ok', 0), upstream('http_4xx', 60), http(FETCH, '502', 60), http(FETCH, '200', 30)],
      alert_rule_test: [
        { eval_time: '15m', alertname: 'MjGatewayUpstreamAuthFailing', exp_alerts: [jobAlert('critical')] },
        { eval_time: '15m', alertname: 'MjGatewayUpstreamErrorRatioHigh', exp_alerts: [] }, // 4xx answers are not failures; the auth alert covers this
        { eval_time: '15m', alertname: 'MjGatewayHigh5xxRatio', exp_alerts: [jobAlert('critical')] },
        { eval_time: '15m', alertname: 'MjGatewayUpstreamTimeouts', exp_alerts: [] }
      ]
    },
    {
      name: 'clients poll unknown ids: upstream 404 passed through, no 502 -> not an auth failure',
      interval: '15s',
      input_series: [upstream('ok', 60), upstream('http_4xx', 180), http(FETCH, '404', 180), http(FETCH, '200', 60)],
      alert_rule_test: [
        { eval_time: '15m', alertname: 'MjGatewayUpstreamAuthFailing', exp_alerts: [] },
        { eval_time: '15m', alertname: 'MjGatewayHigh5xxRatio', exp_alerts: [] },
        { eval_time: '15m', alertname: 'MjGatewayUpstreamErrorRatioHigh', exp_alerts: [] }
      ]
    },
    {
      name: 'upstream outage: 5xx and timeouts, a trickle of 4xx -> errors and timeouts, not auth',
      interval: '15s',
      input_series: [
        upstream('ok', 300),
        upstream('http_5xx', 120),
        upstream('timeout', 30),
        upstream('http_4xx', 6),
        http(FETCH, '200', 300),
        http(FETCH, '502', 120),
        http(FETCH, '504', 30),
        http('/healthz', '200', 4),
        http('/metrics', '200', 4)
      ],
      alert_rule_test: [
        { eval_time: '15m', alertname: 'MjGatewayUpstreamAuthFailing', exp_alerts: [] },
        { eval_time: '15m', alertname: 'MjGatewayUpstreamErrorRatioHigh', exp_alerts: [jobAlert('warning')] },
        { eval_time: '15m', alertname: 'MjGatewayUpstreamTimeouts', exp_alerts: [jobAlert('warning')] },
        { eval_time: '15m', alertname: 'MjGatewayHigh5xxRatio', exp_alerts: [jobAlert('critical')] }
      ]
    },
    {
      name: 'healthy: errors below thresholds, health checks do not dilute or count',
      interval: '15s',
      input_series: [upstream('ok', 600), upstream('http_5xx', 6), http(FETCH, '200', 3000), http(FETCH, '502', 6), http('/healthz', '200', 4)],
      alert_rule_test: ['MjGatewayUpstreamErrorRatioHigh', 'MjGatewayUpstreamTimeouts', 'MjGatewayUpstreamAuthFailing', 'MjGatewayHigh5xxRatio'].map(
        (alertname) => ({ eval_time: '20m', alertname, exp_alerts: [] })
      )
    },
    {
      name: 'one instance stops answering scrapes',
      interval: '1m',
      input_series: [
        { series: 'up{job="mj-gateway",instance="gateway-1:8080"}', values: '1x10' },
        { series: 'up{job="mj-gateway",instance="gateway-2:8080"}', values: '1 1 1 0x7' },
        { series: 'mj_gateway_cache_entries{job="mj-gateway",instance="gateway-1:8080"}', values: '5x10' },
        { series: 'mj_gateway_cache_entries{job="mj-gateway",instance="gateway-2:8080"}', values: '5 5 5' },
        // another job's target being down is not the gateway's business
        { series: 'up{job="node",instance="host:9100"}', values: '0x10' }
      ],
      alert_rule_test: [
        { eval_time: '3m', alertname: 'MjGatewayInstanceDown', exp_alerts: [] },
        {
          eval_time: '6m',
          alertname: 'MjGatewayInstanceDown',
          exp_alerts: [{ exp_labels: { severity: 'critical', service: 'mj-gateway', job: 'mj-gateway', instance: 'gateway-2:8080' } }]
        }
      ]
    },
    {
      name: 'hit ratio falls from 5/6 to 1/3 after a day (e.g. Redis lost)',
      interval: '1m',
      input_series: [
        { series: sel('mj_gateway_cache_lookups_total', { result: 'hit' }), values: '0+600x1440 864000+60x120' },
        { series: sel('mj_gateway_cache_lookups_total', { result: 'miss' }), values: '0+120x1560' }
      ],
      alert_rule_test: [
        { eval_time: '1d', alertname: 'MjGatewayHitRatioCollapse', exp_alerts: [] },
        { eval_time: '1d3m', alertname: 'MjGatewayHitRatioCollapse', exp_alerts: [jobAlert('warning')] }
      ]
    },
    {
      name: 'one client gets nearly all 429s (docs/tenancy.md), while a spread of a few 429s over clients stays quiet',
      interval: '1m',
      input_series: [
        clientRequests('noisy', '429', 120),
        clientRequests('noisy', '200', 600),
        clientRequests('quiet', '429', 6),
        clientRequests('quiet', '200', 600),
        clientRequests('web', '429', 3, 10, '0+3x10 30+3x20'),
        clientRequests('jwt', '429', 3, 10, '0+0x10 0+3x20')
      ],
      alert_rule_test: [
        // `for: 1m` (every alert fires within 2 minutes, docs/operations-resilience.md): pending at 1m, not firing yet
        { eval_time: '1m', alertname: 'MjGatewayClient429Dominant', exp_alerts: [] },
        {
          eval_time: '25m',
          alertname: 'MjGatewayClient429Dominant',
          exp_alerts: [{ exp_labels: { severity: 'warning', service: 'mj-gateway', job: 'mj-gateway', client: 'noisy' } }]
        }
      ]
    },
    {
      name: '429s spread over clients: no single client dominates',
      interval: '1m',
      input_series: [clientRequests('web', '429', 60), clientRequests('jwt', '429', 60), clientRequests('anonymous', '429', 60)],
      alert_rule_test: [{ eval_time: '25m', alertname: 'MjGatewayClient429Dominant', exp_alerts: [] }]
    }
  ]
  // promtool compares annotations too; these scenarios are about expressions, `for` and labels, so they
  // run against a copy without annotations (whose templates `promtool check rules` has parsed above).
  const dir = tempDir(t)
  const alerts = obj(parse(readFileSync(ALERTS_FILE, 'utf8')))
  for (const group of arr(alerts['groups'])) for (const rule of arr(obj(group)['rules'])) delete obj(rule)['annotations']
  writeFileSync(join(dir, 'alerts.yml'), stringify(alerts))
  writeFileSync(join(dir, 'alerts.test.yml'), stringify({ rule_files: ['alerts.yml'], evaluation_interval: '1m', tests }))
  const r = promtool(['test', 'rules', 'alerts.test.yml'], dir)
  t.ok(r.ok, r.output)
})
