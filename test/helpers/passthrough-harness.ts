import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { tempDataDir } from './data-dir.js'

export const UPSTREAM_KEY = 'upstream-key-Zq9vX41'
export const CLIENT_TOKEN = 'client-token-Lp7wR22'
/** what a client sends when CLIENT_KEYS holds CLIENT_TOKEN */
export const CLIENT_AUTH = { authorization: `Bearer ${CLIENT_TOKEN}` }
/** midjourney-proxy's answer to a submit */
export const SUBMIT_OK = JSON.stringify({ code: 1, description: 'Submit success', properties: {}, result: '1730621826053455' })

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly origin: string
  /** every log line written so far */
  logs(): string
  call(method: string, path: string, opts?: { headers?: Record<string, string>; body?: string | Buffer }): Promise<Reply>
  /** a JSON POST */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Reply>
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  text: string
  json: unknown
}

/**
 * The built gateway listening on 127.0.0.1:0 in front of `upstream`, closed in teardown.
 * Rate limiting is off unless a test sets it, so request-heavy tests keep passing once it exists.
 */
export async function startGateway(t: Teardown, upstream: string, env: Record<string, string> = {}): Promise<Gateway> {
  const config = loadConfig({
    UPSTREAM_BASE_URL: upstream,
    UPSTREAM_API_KEY: UPSTREAM_KEY,
    RATE_LIMIT_PER_MINUTE: '0',
    LOG_LEVEL: 'info',
    DATA_DIR: env['DATA_DIR'] ?? tempDataDir(t),
    // ownership (docs/tenancy.md) is tested where a test sets TASK_OWNERSHIP; elsewhere any client may read any task
    TASK_OWNERSHIP: env['TASK_OWNERSHIP'] ?? 'off',
    ...env
  })
  let logText = ''
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString()
      done()
    }
  })
  const app = await buildApp(config, { logStream })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const gw: Gateway = {
    app,
    origin: `http://127.0.0.1:${port}`,
    logs: () => logText,
    call: (method, path, opts = {}) => rawCall(port, method, path, opts.headers ?? {}, opts.body),
    post: (path, body, headers = {}) =>
      rawCall(port, 'POST', path, { 'content-type': 'application/json', ...headers }, typeof body === 'string' ? body : JSON.stringify(body))
  }
  return gw
}

/** node:http sends the path exactly as given: no client-side normalisation of `..` or percent-escapes. */
function rawCall(port: number, method: string, path: string, headers: Record<string, string>, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const buf = Buffer.concat(chunks)
        const text = buf.toString('utf8')
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, text, json })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** An origin on which nothing listens (connection refused). */
export async function closedOrigin(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}
