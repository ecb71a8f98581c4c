/**
 * The built gateway listening on 127.0.0.1:0 with the fake upstream behind it, both closed in teardown.
 */
import { createServer, request as httpRequest, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { tempDataDir } from './data-dir.js'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import type { Clock } from '../../src/cache/task-cache.js'
import { startSimulatedUpstream, type SimulatedUpstream } from '../../src/demo/simulated-upstream.js'
import { get, waitFor, type HttpResult } from './net.js'

export const UPSTREAM_KEY = 'sk-upstream-SECRET-9d2f6b1e7c'

export interface Gateway {
  app: FastifyInstance
  config: Config
  /** http://127.0.0.1:PORT */
  url: string
  port: number
  upstream: SimulatedUpstream
  /** every pino line written so far */
  logs(): string
  /** GET /mj/task/{id}/fetch (id as given, not encoded) */
  fetchTask(id: string, headers?: Record<string, string>): Promise<HttpResult>
  /** the /metrics text */
  metrics(): Promise<string>
}

export interface GatewayOptions {
  /** an upstream to put behind the gateway instead of a fresh fake one (closed by whoever started it) */
  upstreamUrl?: string
  /** the memory cache's clock (a ManualClock lets a test reach an expiry without sleeping) */
  clock?: Clock
}

export async function startGateway(t: Test, env: Record<string, string> = {}, opts: GatewayOptions = {}): Promise<Gateway> {
  const upstream = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => upstream.close())
  const config = loadConfig({
    UPSTREAM_API_KEY: UPSTREAM_KEY,
    UPSTREAM_BASE_URL: opts.upstreamUrl ?? upstream.url,
    LOG_LEVEL: 'silent',
    // each gateway its own embedded store (owner records), removed afterwards
    DATA_DIR: env['DATA_DIR'] ?? tempDataDir(t),
    // ownership (docs/tenancy.md) is tested where a test sets TASK_OWNERSHIP; elsewhere any client may read any task
    TASK_OWNERSHIP: env['TASK_OWNERSHIP'] ?? 'off',
    ...(process.env.HIT_LANE ? { HIT_LANE: process.env.HIT_LANE } : {}),
    ...env
  })
  let logText = ''
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logText += chunk.toString()
      cb()
    }
  })
  const app = await buildApp(config, { logStream, clock: opts.clock })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const url = `http://127.0.0.1:${port}`
  return {
    app,
    config,
    url,
    port,
    upstream,
    logs: () => logText,
    fetchTask: (id, headers) => get(`${url}/mj/task/${id}/fetch`, headers),
    metrics: async () => (await get(`${url}/metrics`)).body
  }
}

/** GET with the path sent exactly as written (no URL normalisation of `.`, `..` or `%2F`), on a fresh socket. */
export function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
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
 * An upstream that holds its answers until released, so a test can make sure every concurrent request
 * has reached the gateway before the one upstream call completes (no race on timing).
 */
export async function startGatedUpstream(t: Test, answer: { status?: number; body: string }): Promise<GatedUpstream> {
  const waiting: ServerResponse[] = []
  let calls = 0
  const send = (res: ServerResponse) => {
    res.writeHead(gate.answer.status ?? 200, { 'content-type': 'application/json' })
    res.end(gate.answer.body)
  }
  const server = createServer((req, res) => {
    calls++
    req.resume()
    if (gate.hold) waiting.push(res)
    else send(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const gate: GatedUpstream = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get calls() {
      return calls
    },
    answer,
    hold: true,
    release() {
      gate.hold = false
      for (const res of waiting.splice(0)) send(res)
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
