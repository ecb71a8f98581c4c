/**
 * The one test harness: the built gateway listening on 127.0.0.1:0 in front of the simulated upstream
 * (src/demo/simulated-upstream.ts), both closed in teardown. Replicas are several startGateway calls with a
 * shared UPSTREAM_BASE_URL (and REDIS_URL) in env.
 */
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOverrides } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import type { Clock } from '../../src/cache/task-cache.js'
import { startSimulatedUpstream, type SimulatedUpstream, type SimulatedUpstreamOptions } from '../../src/demo/simulated-upstream.js'
import { get, send, waitFor, type HttpResult, type SendOptions } from './net.js'
import { isolatedDataEnv } from './data-dir.js'

export const UPSTREAM_KEY = 'sk-upstream-SECRET-9d2f6b1e7c'
export const CLIENT_TOKEN = 'client-token-Lp7wR22'
/** what a client sends when CLIENT_KEYS holds CLIENT_TOKEN */
export const CLIENT_AUTH = { authorization: `Bearer ${CLIENT_TOKEN}` }
/** midjourney-proxy's answer to a submit */
export const SUBMIT_OK = JSON.stringify({ code: 1, description: 'Submit success', properties: {}, result: '1730621826053455' })

/** the part of a tap Test the harness needs */
interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Gateway {
  app: FastifyInstance
  config: Config
  /** http://127.0.0.1:PORT */
  url: string
  port: number
  /** the simulated upstream started for this gateway (behind it unless env or upstreamUrl points elsewhere) */
  upstream: SimulatedUpstream
  /** every pino line written so far */
  logs(): string
  /** the same, one entry per line */
  logLines(): string[]
  /** GET /mj/task/{id}/fetch (id as given, not encoded) */
  fetchTask(id: string, headers?: Record<string, string>): Promise<HttpResult>
  /** the /metrics text */
  metrics(): Promise<string>
  /** a sample's value from /metrics by its series as written, e.g. 'mj_gateway_cache_lookups_total{result="hit"}' */
  metric(series: string): Promise<number | undefined>
  /** any method; the path is sent exactly as written */
  request(method: string, path: string, opts?: SendOptions): Promise<HttpResult>
  get(path: string, headers?: Record<string, string | undefined>): Promise<HttpResult>
  /** a JSON POST: content-type application/json unless given; a string or Buffer body is sent as is */
  post(path: string, body: unknown, headers?: Record<string, string | undefined>): Promise<HttpResult>
  /** waits (up to 10 s) until /readyz says redis is `state` */
  waitRedis(state: 'up' | 'down'): Promise<void>
}

export interface GatewayOptions {
  /** an upstream to put behind the gateway instead of the simulated one (closed by whoever started it) */
  upstreamUrl?: string
  /** the memory cache's clock (a ManualClock lets a test reach an expiry without sleeping) */
  clock?: Clock
  /**
   * the simulated upstream's options; by default any id fetched is a SUCCESS task (inventUnknownTasks),
   * tasks finish fast (stepMs 20, no failures) and the gateway's configured key is required
   */
  upstream?: SimulatedUpstreamOptions
  /** buildApp's overrides (timeouts, httpMetrics) */
  overrides?: AppOverrides
}

/**
 * The lane switch for the whole run: `HIT_LANE=off npm test` runs every gateway without the hit lane, so the
 * hit-path suites prove the lane and the route answer alike. A test's own env wins.
 */
const laneEnv: Record<string, string> = process.env.HIT_LANE === undefined ? {} : { HIT_LANE: process.env.HIT_LANE }

export async function startGateway(t: Teardown, env: Record<string, string> = {}, opts: GatewayOptions = {}): Promise<Gateway> {
  const upstream = await startSimulatedUpstream({ inventUnknownTasks: true, stepMs: 20, failureRatio: 0, ...opts.upstream })
  t.teardown(() => upstream.close())
  const config = loadConfig({
    UPSTREAM_API_KEY: UPSTREAM_KEY,
    UPSTREAM_BASE_URL: opts.upstreamUrl ?? upstream.url,
    LOG_LEVEL: 'silent',
    ...laneEnv,
    ...isolatedDataEnv(t),
    // ownership (docs/tenancy.md) is tested where a test sets TASK_OWNERSHIP; elsewhere any client may read any task
    TASK_OWNERSHIP: 'off',
    ...env
  })
  // the simulation accepts only the key this gateway sends: every test proves the key is injected
  if (opts.upstream?.apiKey === undefined) upstream.requireKey(config.upstream.apiKey, config.upstream.authStyle)
  let logText = ''
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logText += chunk.toString()
      cb()
    }
  })
  const app = await buildApp(config, { logStream, clock: opts.clock, ...opts.overrides })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const url = `http://127.0.0.1:${port}`
  const metrics = async (): Promise<string> => (await get(`${url}/metrics`)).body
  return {
    app,
    config,
    url,
    port,
    upstream,
    logs: () => logText,
    logLines: () => logText.split('\n').filter((l) => l !== ''),
    fetchTask: (id, headers) => get(`${url}/mj/task/${id}/fetch`, headers),
    metrics,
    metric: async (series) => {
      const line = (await metrics()).split('\n').find((l) => l.startsWith(series + ' '))
      return line === undefined ? undefined : Number(line.slice(series.length + 1))
    },
    request: (method, path, sendOpts) => send(method, url + path, sendOpts),
    get: (path, headers) => get(url + path, headers),
    post: (path, body, headers) => send('POST', url + path, { body, headers: { 'content-type': 'application/json', ...headers } }),
    waitRedis: async (state) => {
      await waitFor(async () => ((await get(`${url}/readyz`)).json() as { redis: string }).redis === state, 10_000)
    }
  }
}

/** GET with the path sent exactly as written (no URL normalisation of `.`, `..` or `%2F`) */
export async function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await get(`http://127.0.0.1:${port}${path}`)
  return { status: res.status, body: res.body }
}

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** every sample of a Prometheus text exposition */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string
    out.push({ name: m[1] as string, labels, value: Number(m[3]) })
  }
  return out
}

/** the value of the one sample named so whose labels include `labels`; undefined when there is none */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = parseMetrics(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  )
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}

export interface GatedUpstream {
  url: string
  /** requests received */
  readonly calls: number
  /** what every request is answered with */
  answer: { status?: number; body: string }
  /** while true, requests wait for release() */
  hold: boolean
  /** answers every waiting request (and stops holding) */
  release(): void
}

/**
 * The simulated upstream answering every request with `answer`, held until released, so a test can make sure
 * every concurrent request has reached the gateway before the one upstream call completes (no race on timing).
 */
export async function startGatedUpstream(t: Teardown, answer: { status?: number; body: string }): Promise<GatedUpstream> {
  const up = await startSimulatedUpstream({ handler: () => ({ kind: 'raw', status: gate.answer.status ?? 200, body: gate.answer.body }) })
  t.teardown(() => up.close())
  up.hold()
  let holding = true
  const gate: GatedUpstream = {
    url: up.url,
    get calls() {
      return up.calls
    },
    answer,
    get hold() {
      return holding
    },
    set hold(on: boolean) {
      holding = on
      if (on) up.hold()
      else up.release()
    },
    release() {
      gate.hold = false
    }
  }
  return gate
}

/**
 * n concurrent GETs of one path through the gateway while the gated upstream holds its answer; released once
 * all n have reached the gateway and the upstream call is under way.
 */
export async function burstThroughGate(gw: Gateway, gate: GatedUpstream, path: string, n: number, headers?: Record<string, string>): Promise<HttpResult[]> {
  let arrived = 0
  const onRequest = () => arrived++
  gw.app.server.on('request', onRequest)
  try {
    gate.hold = true
    const callsBefore = gate.calls
    const pending = Promise.all(Array.from({ length: n }, () => get(`${gw.url}${path}`, headers)))
    await waitFor(() => arrived >= n && gate.calls > callsBefore, 10_000)
    // from the 'request' event to joining the flight is a few microtasks; leave them ample time
    await new Promise((resolve) => setTimeout(resolve, 50))
    gate.release()
    return await pending
  } finally {
    gw.app.server.off('request', onRequest)
  }
}
