/**
 * The one HTTP client of the tests (real sockets, undici), plus raw-socket helpers for the few tests that must
 * send malformed HTTP.
 */
import { createServer } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { getGlobalDispatcher, type Dispatcher } from 'undici'

export interface HttpResult {
  status: number
  /** lowercase names; repeated headers joined with ', ' */
  headers: Record<string, string>
  /** the body as UTF-8 text */
  body: string
  /** the same text (for tests that read `text`) */
  text: string
  /** the body's bytes */
  bytes: Buffer
  /** JSON.parse(body); throws on a body that is not JSON */
  json(): unknown
}

export interface SendOptions {
  headers?: Record<string, string | undefined>
  /** a string or Buffer is sent as is; anything else as JSON (with content-type application/json unless given) */
  body?: unknown
  /** send the body with transfer-encoding: chunked (no content-length) */
  chunked?: boolean
  /** aborts the request (the promise rejects with an AbortError) */
  signal?: AbortSignal
}

/** origin and path of a URL, the path exactly as written (no normalisation of `.`, `..` or `%2F`) */
function split(url: string): { origin: string; path: string } {
  const m = /^(https?:\/\/[^/?#]+)(.*)$/.exec(url)
  if (m === null) throw new Error(`not an absolute http URL: ${url}`)
  const rest = m[2] as string
  return { origin: m[1] as string, path: rest === '' ? '/' : rest }
}

/** a body undici can only send chunked: a stream's length is not known up front */
function chunks(body: string | Buffer): Readable {
  return Readable.from([Buffer.from(body)])
}

/** any method; the path is sent exactly as written; never throws on a non-2xx status (only on network errors) */
export async function send(method: string, url: string, opts: SendOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = v
  let body: string | Buffer | undefined
  if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) {
    body = opts.body
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body)
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json'
    }
  }
  const { origin, path } = split(url)
  const payload = opts.chunked === true && body !== undefined ? chunks(body) : body
  const res = await getGlobalDispatcher().request({
    origin,
    path,
    method: method.toUpperCase() as Dispatcher.HttpMethod,
    headers,
    body: payload,
    signal: opts.signal,
    headersTimeout: 30_000,
    bodyTimeout: 30_000
  })
  const bytes = Buffer.from(await res.body.arrayBuffer())
  const text = bytes.toString('utf8')
  const flat: Record<string, string> = {}
  for (const [k, v] of Object.entries(res.headers)) {
    if (v === undefined) continue
    flat[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  }
  return {
    status: res.statusCode,
    headers: flat,
    body: text,
    text,
    bytes,
    json: (): unknown => JSON.parse(text) as unknown
  }
}

/** GET; never throws on a non-2xx status */
export async function get(url: string, headers?: Record<string, string | undefined>): Promise<HttpResult> {
  return send('GET', url, { headers })
}

/** POST a JSON value (or a string / Buffer as is); never throws on a non-2xx status */
export async function post(url: string, body: unknown, headers?: Record<string, string | undefined>): Promise<HttpResult> {
  return send('POST', url, { headers, body })
}

/** resolves once cond() is true (polled every 10 ms); rejects after timeoutMs (default 5000) or if cond throws */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() >= deadline) throw new Error(`waitFor: condition still false after ${timeoutMs} ms`)
    await new Promise<void>((resolve) => setTimeout(resolve, 10))
  }
}

/** A raw connection that keeps what it receives, for tests that act while an answer streams (half-close, pause). */
export interface RawConnection {
  socket: Socket
  /** everything received so far, as latin1 */
  received(): string
  /** resolves once what was received matches (rejects after timeoutMs) */
  until(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** resolves with everything received once the connection is closed */
  closed: Promise<string>
}

/** Opens a socket and writes raw bytes on it. */
export function openRaw(port: number, bytes: string | Buffer): RawConnection {
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  const received = (): string => Buffer.concat(chunks).toString('latin1')
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.on('error', () => undefined)
  socket.on('connect', () => socket.write(bytes))
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received())))
  const until = async (pattern: RegExp, timeoutMs = 5000): Promise<string> => {
    await waitFor(() => pattern.test(received()), timeoutMs)
    return received()
  }
  return { socket, received, until, closed }
}

/** Writes raw bytes on a fresh socket and collects everything until the server closes it (or timeoutMs). */
export async function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<string> {
  const c = openRaw(port, bytes)
  const timer = setTimeout(() => c.socket.destroy(), timeoutMs)
  const all = await c.closed
  clearTimeout(timer)
  return all
}

export interface RawAnswer {
  status: number
  /** lowercase names; a repeated header keeps its last value */
  headers: Record<string, string>
  body: string
  /** the whole answer as received */
  raw: string
}

/**
 * rawExchange, its answer parsed by hand: for requests no HTTP client library sends (no Host, an unknown Expect, a
 * malformed head) and answers no library would hand back as they are. Rejects when no HTTP answer came.
 */
export async function rawAnswer(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<RawAnswer> {
  const received = await rawExchange(port, bytes, timeoutMs)
  const head = received.split('\r\n\r\n', 1)[0] ?? ''
  const lines = head.split('\r\n')
  const status = rawStatus(received)
  if (status === 0) throw new Error(`no HTTP answer: ${JSON.stringify(received.slice(0, 200))}`)
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status, headers, body: received.slice(head.length + 4), raw: received }
}

/** The status code of the first response in a raw exchange, or 0 when the server answered nothing. */
export function rawStatus(raw: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw)
  return m === null ? 0 : Number(m[1])
}

/** the body as a JSON object; undefined when it is not JSON or not an object (or there is no answer) */
export function jsonObject(res: HttpResult | undefined): Record<string, unknown> | undefined {
  if (res === undefined) return undefined
  try {
    const parsed: unknown = JSON.parse(res.body)
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** An origin on which nothing listens (connection refused). */
export async function closedOrigin(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}
