import { connect } from 'node:net'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { request, type Dispatcher } from 'undici'
import { buildApp, type AppOverrides } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { startSimulatedUpstream, type SimulatedUpstream, type SimulatedUpstreamOptions } from '../../src/demo/simulated-upstream.js'
import { tempDataDir } from './data-dir.js'

export const UPSTREAM_KEY = 'sk-upstream-SECRET-0123456789abcdef'

interface Teardown {
  teardown: (fn: () => unknown) => void
}

export interface Gateway {
  app: FastifyInstance
  sim: SimulatedUpstream
  config: Config
  /** http://127.0.0.1:port */
  url: string
  port: number
  /** every log line written so far, raw */
  logs: string[]
  /** requests the simulated upstream has seen, any route */
  upstreamCalls: () => number
}

export interface GatewayOptions {
  sim?: SimulatedUpstreamOptions
  overrides?: AppOverrides
}

/** The built app listening on 127.0.0.1:0 in front of the simulated upstream; both closed in teardown. */
export async function startGateway(t: Teardown, env: Record<string, string> = {}, opts: GatewayOptions = {}): Promise<Gateway> {
  const sim = await startSimulatedUpstream({ apiKey: UPSTREAM_KEY, stepMs: 20, failureRatio: 0, ...opts.sim })
  const logs: string[] = []
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString())
      cb()
    }
  })
  const config = loadConfig({ UPSTREAM_BASE_URL: sim.url, UPSTREAM_API_KEY: UPSTREAM_KEY, LOG_LEVEL: 'info', ...(process.env.HIT_LANE ? { HIT_LANE: process.env.HIT_LANE } : {}),
    DATA_DIR: env['DATA_DIR'] ?? tempDataDir(t),
    // ownership (docs/tenancy.md) is tested where a test sets TASK_OWNERSHIP; elsewhere any client may read any task
    TASK_OWNERSHIP: env['TASK_OWNERSHIP'] ?? 'off',
    ...env
  })
  const app = await buildApp(config, { logStream, ...opts.overrides })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    await app.close()
    await sim.close()
  })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { app, sim, config, url: `http://127.0.0.1:${port}`, port, logs, upstreamCalls: () => sim.stats.requests }
}

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: Record<string, unknown> | undefined
}

/** One request through undici (any method, any header), the body read whole. */
export async function call(
  gw: Pick<Gateway, 'url'>,
  path: string,
  opts: { method?: Dispatcher.HttpMethod | string; headers?: Record<string, string | undefined>; body?: string } = {}
): Promise<Answer> {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = v
  const res = await request(gw.url + path, { method: (opts.method ?? 'GET') as Dispatcher.HttpMethod, headers, body: opts.body ?? null })
  const text = await res.body.text()
  let json: Record<string, unknown> | undefined
  try {
    const parsed: unknown = JSON.parse(text)
    json = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined
  } catch {
    json = undefined
  }
  return { status: res.statusCode, headers: res.headers, text, json }
}

/** Writes raw bytes on a fresh socket and collects everything until the server closes it (or timeoutMs). */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks).toString('latin1'))
    })
    socket.on('connect', () => socket.write(bytes))
  })
}

/** The status code of the first response in a raw exchange, or 0 when the server answered nothing. */
export function rawStatus(raw: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw)
  return m === null ? 0 : Number(m[1])
}
