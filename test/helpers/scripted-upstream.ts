import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/** One request as the upstream received it. */
export interface Received {
  method: string
  /** the request target exactly as sent (path and query) */
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

export type Answer = { status?: number; body?: string | Buffer; headers?: Record<string, string> } | 'hang' | 'reset'
export type Script = (req: Received) => Answer | Promise<Answer>

export interface ScriptedUpstream {
  readonly url: string
  /** every request received, in order */
  readonly received: Received[]
  /** how the next requests are answered; default 200 `{"code":1,...}` */
  script: Script
  close(): Promise<void>
}

export const SUBMIT_OK = JSON.stringify({ code: 1, description: 'Submit success', properties: {}, result: '1730621826053455' })

/** A node:http upstream whose answers each test scripts, and which records everything it receives. */
export async function startScriptedUpstream(script: Script = () => ({ body: SUBMIT_OK })): Promise<ScriptedUpstream> {
  const sockets = new Set<Socket>()
  const state: ScriptedUpstream = {
    url: '',
    received: [],
    script,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const received: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) }
      state.received.push(received)
      void Promise.resolve(state.script(received)).then((answer) => {
        if (answer === 'hang') return
        if (answer === 'reset') {
          req.socket.destroy()
          return
        }
        res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers })
        res.end(answer.body ?? '')
      })
    })
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return Object.assign(state, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
}

/** An origin on which nothing listens (connection refused). */
export async function closedOrigin(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}
