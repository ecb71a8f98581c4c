/**
 * A programmable fake of the Midjourney task API (midjourney-proxy / QuickRouter), served over a
 * real socket with node:http, so gateway tests can count upstream calls, inspect the headers the
 * gateway sent, and make the upstream slow, failing, hanging, resetting or talking garbage.
 *
 *   const up = await startFakeUpstream()
 *   t.teardown(() => up.close())
 *   up.enqueue({ kind: 'json', status: 503, body: { error: 'busy' } })   // first call only
 *   up.setHandler((req, i) => ({ kind: 'json', body: taskBody(idFromUrl(req.url) ?? 'x', 'SUCCESS') }))
 *
 * Behaviour selection for each request (after its body has been read completely):
 * the oldest enqueued one-shot behaviour if any, else the handler. `callIndex` is the 0-based
 * index of the request among all requests since start (or the last reset()), queued ones included.
 * A handler that throws is answered 500 with the error message, so a test fails instead of hanging.
 */
import { createHash } from 'node:crypto'
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse
} from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

export type Behavior =
  /** JSON.stringify(body) (an `undefined` body sends an empty body); default status 200 */
  | { kind: 'json'; status?: number; body: unknown; headers?: Record<string, string>; delayMs?: number }
  /** exactly these bytes; default status 200, default content-type application/json */
  | { kind: 'raw'; status?: number; body: string | Buffer; headers?: Record<string, string>; delayMs?: number }
  /** read the request, never answer (until close()) */
  | { kind: 'hang' }
  /** destroy the socket (TCP RST) without answering */
  | { kind: 'reset' }
  /** send headers with a content-length larger than what is sent, then part of the body, then close the socket */
  | { kind: 'reset-mid-body'; status?: number; partial?: string }
  /**
   * a JSON object body (a task object plus a `padding` string) of exactly `bytes` bytes when `bytes`
   * is at least the size of the bare task object (about 2 KB; else that bare object), streamed in
   * 64 KiB writes with backpressure; with `chunked` there is no content-length
   */
  | { kind: 'huge'; bytes: number; status?: number; chunked?: boolean }
  /**
   * the body dripped `chunkBytes` bytes (default 1) every `chunkDelayMs`, the first piece right after
   * the headers; the headers carry the full content-length, default status 200
   */
  | { kind: 'slow-body'; body: string; chunkDelayMs: number; chunkBytes?: number; status?: number }

export type Handler = (req: RecordedRequest, callIndex: number) => Behavior

export interface FakeUpstream {
  /** http://127.0.0.1:PORT (no trailing slash) */
  readonly url: string
  /** total requests received since start or the last reset() */
  readonly calls: number
  /** every request, in order of arrival (complete bodies) */
  readonly requests: RecordedRequest[]
  /** requests whose url (path + query) starts with the prefix */
  callsTo(pathPrefix: string): number
  /** the handler for every request not served from the queue */
  setHandler(h: Handler): void
  /** one-shot behaviours, used first-in first-out before the handler */
  enqueue(...b: Behavior[]): void
  /** clears counters, recorded requests and the queue; the handler goes back to the one given to startFakeUpstream (else the default) */
  reset(): void
  /** ends hanging and in-progress responses, destroys every socket, clears timers; idempotent */
  close(): Promise<void>
}

const JSON_TYPE = 'application/json'

// ---------------------------------------------------------------------------------------------
// Task bodies

/** lowercase hex of a Unix time in seconds, at least 8 digits (Discord's `ex=` / `is=` format) */
function hexSeconds(unixSeconds: number): string {
  return Math.max(0, Math.floor(unixSeconds)).toString(16).padStart(8, '0')
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

/** a stable uuid-shaped job hash derived from a task id (as Midjourney's button customIds carry) */
function jobHash(id: string): string {
  const h = sha256Hex(`job:${id}`)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`
}

function imageUrlFor(hash: string, unixSeconds: number): string {
  const ex = hexSeconds(unixSeconds)
  const is = hexSeconds(unixSeconds - 86_400)
  const hm = sha256Hex(`${hash}:${ex}`)
  return (
    'https://cdn.discordapp.com/attachments/1300842274347028520/1302547211321741343/' +
    `fake_user_pig_${hash}.png?ex=${ex}&is=${is}&hm=${hm}&`
  )
}

/** a Discord-style signed CDN URL whose `ex=` parameter is `unixSeconds` in hex */
export function imageUrlExpiringAt(unixSeconds: number): string {
  return imageUrlFor(jobHash(String(unixSeconds)), unixSeconds)
}

function buttons(hash: string): Record<string, unknown>[] {
  const b = (customId: string, label: string, emoji = ''): Record<string, unknown> => ({
    customId,
    emoji,
    label,
    type: 2,
    style: 2
  })
  return [
    ...[1, 2, 3, 4].map((n) => b(`MJ::JOB::upsample::${n}::${hash}`, `U${n}`)),
    b(`MJ::JOB::reroll::0::${hash}::SOLO`, '', '\u{1F504}'),
    ...[1, 2, 3, 4].map((n) => b(`MJ::JOB::variation::${n}::${hash}`, `V${n}`))
  ]
}

const TERMINAL = new Set(['SUCCESS', 'FAILURE', 'CANCEL'])

/**
 * A task object shaped like the upstream's example. Deterministic for a given (id, status) except
 * that a SUCCESS imageUrl expires (ex=) 24 h after the current second. Terminal statuses carry
 * progress '100%' (SUCCESS) or '0%' and a finishTime; FAILURE has a failReason and an empty
 * imageUrl; non-terminal statuses have progress '42%', finishTime 0 and an empty imageUrl.
 * `overrides` are shallow-merged last.
 */
export function taskBody(id: string, status: string, overrides?: Record<string, unknown>): Record<string, unknown> {
  const hash = jobHash(id)
  const terminal = TERMINAL.has(status)
  const prompt = 'pig --v 6.1'
  const submitTime = 1_730_621_826_053
  return {
    id,
    action: 'IMAGINE',
    customId: '',
    botType: '',
    prompt,
    promptEn: prompt,
    description: 'Submit success',
    state: '',
    submitTime,
    startTime: status === 'NOT_START' || status === 'SUBMITTED' || status === '' ? 0 : submitTime + 1_971,
    finishTime: terminal ? submitTime + 29_764 : 0,
    imageUrl: status === 'SUCCESS' ? imageUrlFor(hash, Math.floor(Date.now() / 1000) + 86_400) : '',
    status,
    progress: status === 'SUCCESS' ? '100%' : terminal ? '0%' : '42%',
    failReason: status === 'FAILURE' ? 'Banned prompt detected' : '',
    buttons: status === 'SUCCESS' ? buttons(hash) : [],
    maskBase64: '',
    properties: { finalPrompt: prompt, finalZhPrompt: '' },
    ...overrides
  }
}

/** the (URI-decoded) id of a `/mj/task/:id/fetch` path or URL (query ignored), else undefined */
export function idFromUrl(url: string): string | undefined {
  let path: string
  try {
    path = new URL(url, 'http://fake.invalid').pathname
  } catch {
    return undefined
  }
  const m = /^\/mj\/task\/([^/]+)\/fetch$/.exec(path)
  if (!m?.[1]) return undefined
  try {
    return decodeURIComponent(m[1])
  } catch {
    return m[1]
  }
}

/** GET /mj/task/:id/fetch answers taskBody(id, 'SUCCESS'); anything else a 404 JSON body */
const defaultHandler: Handler = (req) => {
  const id = req.method === 'GET' ? idFromUrl(req.url) : undefined
  if (id !== undefined) return { kind: 'json', body: taskBody(id, 'SUCCESS') }
  return {
    kind: 'json',
    status: 404,
    body: { code: 404, error: 'Not Found', message: `fake upstream: no route for ${req.method} ${req.url}` }
  }
}

// ---------------------------------------------------------------------------------------------
// The server

function withHeaders(base: OutgoingHttpHeaders, extra: Record<string, string> | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...base }
  for (const [k, v] of Object.entries(extra ?? {})) out[k.toLowerCase()] = v
  return out
}

export async function startFakeUpstream(opts?: { handler?: Handler }): Promise<FakeUpstream> {
  const startHandler = opts?.handler ?? defaultHandler
  let handler = startHandler
  let queue: Behavior[] = []
  let requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let closing: Promise<void> | undefined

  /** a timer that close() clears; `fn` is skipped when the response is already gone */
  const later = (ms: number, res: ServerResponse, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (!res.destroyed && closing === undefined) fn()
    }, Math.max(0, ms))
    timers.add(timer)
  }

  const send = (res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer): void => {
    res.writeHead(status, { 'content-length': body.length, ...headers })
    res.end(body)
  }

  const serve = (rec: RecordedRequest, b: Behavior, req: IncomingMessage, res: ServerResponse): void => {
    switch (b.kind) {
      case 'json':
      case 'raw': {
        let body: Buffer
        if (b.kind === 'json') {
          const text = JSON.stringify(b.body) as string | undefined
          body = Buffer.from(text ?? '', 'utf8')
        } else {
          body = typeof b.body === 'string' ? Buffer.from(b.body, 'utf8') : b.body
        }
        const headers = withHeaders({ 'content-type': JSON_TYPE, 'content-length': body.length }, b.headers)
        const go = (): void => send(res, b.status ?? 200, headers, body)
        if (b.delayMs !== undefined && b.delayMs > 0) later(b.delayMs, res, go)
        else go()
        return
      }
      case 'hang':
        return
      case 'reset':
        req.socket.resetAndDestroy()
        return
      case 'reset-mid-body': {
        const partial = Buffer.from(
          b.partial ?? `{"id":${JSON.stringify(idFromUrl(rec.url) ?? 'x')},"action":"IMAGINE","status":"SUCC`,
          'utf8'
        )
        res.writeHead(b.status ?? 200, { 'content-type': JSON_TYPE, 'content-length': partial.length + 4096 })
        res.write(partial, () => {
          // the bytes are with the kernel; close (FIN, not RST, so the client surely reads them first)
          later(25, res, () => req.socket.destroy())
        })
        return
      }
      case 'huge': {
        const id = idFromUrl(rec.url) ?? 'huge'
        const bare = JSON.stringify({ ...taskBody(id, 'SUCCESS'), padding: '' })
        // bare ends with `"padding":""}`: split it before the closing `"}`
        const head = Buffer.from(bare.slice(0, -2), 'utf8')
        const tail = Buffer.from('"}', 'utf8')
        let remaining = Math.max(0, Math.floor(b.bytes) - head.length - tail.length)
        const total = head.length + remaining + tail.length
        const headers: OutgoingHttpHeaders = { 'content-type': JSON_TYPE }
        if (!b.chunked) headers['content-length'] = total
        res.writeHead(b.status ?? 200, headers)
        res.write(head)
        const block = Buffer.alloc(64 * 1024, 'x')
        const pump = (): void => {
          while (remaining > 0) {
            if (res.destroyed || closing !== undefined) return
            const n = Math.min(remaining, block.length)
            remaining -= n
            if (!res.write(n === block.length ? block : block.subarray(0, n))) {
              res.once('drain', pump)
              return
            }
          }
          if (!res.destroyed) res.end(tail)
        }
        pump()
        return
      }
      case 'slow-body': {
        const body = Buffer.from(b.body, 'utf8')
        const step = Math.max(1, Math.floor(b.chunkBytes ?? 1))
        res.writeHead(b.status ?? 200, { 'content-type': JSON_TYPE, 'content-length': body.length })
        let offset = 0
        const drip = (): void => {
          const piece = body.subarray(offset, offset + step)
          offset += piece.length
          if (offset >= body.length) {
            res.end(piece)
            return
          }
          res.write(piece)
          later(b.chunkDelayMs, res, drip)
        }
        if (body.length === 0) res.end()
        else drip()
        return
      }
      default: {
        const never: never = b
        throw new Error(`fake upstream: unknown behavior ${JSON.stringify(never)}`)
      }
    }
  }

  const server = createServer((req, res) => {
    req.on('error', () => {})
    res.on('error', () => {})
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (closing !== undefined) {
        req.socket.destroy()
        return
      }
      const rec: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks)
      }
      requests.push(rec)
      const callIndex = requests.length - 1
      let b: Behavior
      try {
        b = queue.shift() ?? handler(rec, callIndex)
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err)
        b = { kind: 'json', status: 500, body: { error: 'fake upstream handler threw', message } }
      }
      try {
        serve(rec, b, req, res)
      } catch (err) {
        console.error('fake upstream: failed to serve', b.kind, err)
        req.socket.destroy()
      }
    })
  })
  // never let the server's own timers end a hanging request; only close() does
  server.requestTimeout = 0
  server.headersTimeout = 0
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`

  return {
    url,
    get calls() {
      return requests.length
    },
    get requests() {
      return requests
    },
    callsTo(pathPrefix: string): number {
      return requests.filter((r) => r.url.startsWith(pathPrefix)).length
    },
    setHandler(h: Handler): void {
      handler = h
    },
    enqueue(...b: Behavior[]): void {
      queue.push(...b)
    },
    reset(): void {
      requests = []
      queue = []
      handler = startHandler
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t)
        timers.clear()
        server.close(() => resolve())
        server.closeAllConnections()
        for (const s of sockets) s.destroy()
        sockets.clear()
      })
      return closing
    }
  }
}
