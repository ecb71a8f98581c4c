/**
 * Small HTTP helpers shared by the gateway tests (real sockets, undici).
 */
import { request } from 'undici'

export interface HttpResult {
  status: number
  /** lowercase names; repeated headers joined with ', ' */
  headers: Record<string, string>
  body: string
  /** JSON.parse(body); throws on a body that is not JSON */
  json(): unknown
}

export interface SendOptions {
  headers?: Record<string, string>
  /** a string or Buffer is sent as is; anything else as JSON (with content-type application/json unless given) */
  body?: unknown
}

/** any method; never throws on a non-2xx status (only on network errors) */
export async function send(method: string, url: string, opts: SendOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...opts.headers }
  let body: string | Buffer | undefined
  if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) {
    body = opts.body
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body)
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json'
    }
  }
  const res = await request(url, {
    method: method.toUpperCase(),
    headers,
    body,
    headersTimeout: 30_000,
    bodyTimeout: 30_000
  })
  const text = await res.body.text()
  const flat: Record<string, string> = {}
  for (const [k, v] of Object.entries(res.headers)) {
    if (v === undefined) continue
    flat[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  }
  return {
    status: res.statusCode,
    headers: flat,
    body: text,
    json: (): unknown => JSON.parse(text) as unknown
  }
}

/** GET; never throws on a non-2xx status */
export async function get(url: string, headers?: Record<string, string>): Promise<HttpResult> {
  return send('GET', url, { headers })
}

/** POST a JSON value (or a string / Buffer as is); never throws on a non-2xx status */
export async function post(url: string, body: unknown, headers?: Record<string, string>): Promise<HttpResult> {
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
