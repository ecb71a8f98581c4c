import type { IncomingMessage } from 'node:http'
import { NOTIFY_ROUTE } from '../push/notify-hook.js'
import { queryOf } from '../http/query-token.js'
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
/** the upstream's callback carries the gateway's callback secret in its path (docs/push.md §5): logged as this */
const NOTIFY_LOGGED = NOTIFY_ROUTE.replace(':secret', '[redacted]')

/**
 * The URL as logged: a credential in the query is replaced, so a log reader cannot replay the request. The query
 * starts where the router starts it (queryOf), so whatever the gateway would take as a token is hidden.
 */
export function loggableUrl(url: string): string {
  const query = queryOf(url)
  // (the hit path's URLs, without a query, are returned as they are: no work per hit)
  if (query === undefined) return url
  const params = query.split('&').map((p) => (SECRET_PARAMS.has(paramName(p)) ? `${p.slice(0, p.indexOf('=') + 1)}[redacted]` : p))
  return `${url.slice(0, url.length - query.length)}${params.join('&')}`
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

  /** `route`: the pattern the router matched, if any (the callback route's URL is never logged as sent); a server's request always has its url */
  write(req: IncomingMessage, statusCode: number, client: ClientIdentity | null, ms: number, reqId = this.nextId(), route?: string): void {
    const request =
      field('method', req.method).slice(1) +
      field('url', route === NOTIFY_ROUTE ? NOTIFY_LOGGED : loggableUrl(req.url as string)) +
      field('host', clientHost(req, this.trust)) +
      field('remoteAddress', clientIp(req, this.trust)) +
      field('remotePort', req.socket.remotePort)
    this.sink.write(
      `${PREFIX}${Date.now()}${BASE},"reqId":${JSON.stringify(reqId)},"req":{${request}},"res":{"statusCode":${statusCode}${field('client', client?.name)}},"responseTime":${ms},"msg":"request completed"}\n`
    )
  }
}
