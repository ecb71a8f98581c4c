import type { IncomingMessage } from 'node:http'
import { hostname } from 'node:os'
import type { ClientIdentity } from '../clients/client-keys.js'
import { clientHost, clientIp, type TrustFn } from '../http/client-address.js'

const REQ_ID_MAX = 2_147_483_647

/** Request ids as Fastify makes them (`req-1`, `req-2`, … in base 36), from one sequence for Fastify and the hit lane. */
export function requestIds(): () => string {
  let next = 0
  return () => {
    next = (next + 1) & REQ_ID_MAX
    return `req-${next.toString(36)}`
  }
}

/**
 * query parameters that carry a credential: a signed image URL's signature (docs/images.md §2), the client token of
 * an events stream (docs/push.md §3); the name in any case and however it is escaped (`%74oken`)
 */
const SECRET_PARAMS = new Set(['sig', 'token'])
/** the upstream's callback URL carries the gateway's callback secret in its path (docs/push.md §5) */
const SECRET_PATH = /^(\/gateway\/notify\/)[^?#]*/

/** The URL as logged: a credential in the query or the path is replaced, so a log reader cannot replay the request. */
export function loggableUrl(url: string | undefined): string | undefined {
  // (the hit path's URLs, without a query, are returned as they are: no work per hit)
  if (url === undefined || (!url.includes('?') && !url.startsWith('/gateway/'))) return url
  const path = url.replace(SECRET_PATH, '$1[redacted]')
  const q = path.indexOf('?')
  if (q < 0) return path
  const params = path
    .slice(q + 1)
    .split('&')
    .map((p) => (SECRET_PARAMS.has(paramName(p)) ? `${p.slice(0, p.indexOf('=') + 1)}[redacted]` : p))
  return `${path.slice(0, q + 1)}${params.join('&')}`
}

/** a query parameter's name as a server reads it: unescaped, and here in lower case */
function paramName(param: string): string {
  const eq = param.indexOf('=')
  const raw = (eq < 0 ? param : param.slice(0, eq)).replace(/\+/g, ' ')
  try {
    return decodeURIComponent(raw).toLowerCase()
  } catch {
    // a broken escape: the name as written
    return raw.toLowerCase()
  }
}

/** where the line goes: the app logger's destination */
export interface LineSink {
  write(line: string): unknown
}

const PREFIX = `{"level":30,"time":`
const BASE = `,"pid":${process.pid},"hostname":${JSON.stringify(hostname())}`

/** `,"name":value` with value as JSON, or nothing when undefined (as pino leaves undefined fields out) */
function field(name: string, value: string | number | undefined): string {
  return value === undefined ? '' : `,"${name}":${typeof value === 'number' ? value : JSON.stringify(value)}`
}

/**
 * The one access line per answered request, at info: what Fastify's "request completed" line holds (request id,
 * method, URL, host, client address and port, status, response time) plus the client's name, as the same pino
 * JSON line (level, time, pid, hostname first; msg last). The Fastify routes (plugins/request-log.ts) and the hit
 * lane both write it, so the two are the same line.
 *
 * Built here rather than by a pino call: the line never holds a header, so pino's redaction has nothing to do, and
 * its generic serialization was most of what a logged cache hit cost beyond an unlogged one. Every string value
 * goes through JSON.stringify, so a hostile URL cannot break the line.
 */
export class AccessLog {
  constructor(
    private readonly sink: LineSink,
    private readonly trust: TrustFn | false,
    private readonly nextId: () => string
  ) {}

  write(req: IncomingMessage, statusCode: number, client: ClientIdentity | null, ms: number, reqId = this.nextId()): void {
    const request =
      field('method', req.method).slice(1) +
      field('url', loggableUrl(req.url)) +
      field('host', clientHost(req, this.trust)) +
      field('remoteAddress', clientIp(req, this.trust)) +
      field('remotePort', req.socket.remotePort)
    this.sink.write(
      `${PREFIX}${Date.now()}${BASE},"reqId":${JSON.stringify(reqId)},"req":{${request}},"res":{"statusCode":${statusCode}${field('client', client?.name)}},"responseTime":${ms},"msg":"request completed"}\n`
    )
  }
}
