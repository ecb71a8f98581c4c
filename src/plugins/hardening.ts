import type { Socket } from 'node:net'
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerOptions } from 'node:http'
import fp from 'fastify-plugin'
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import {
  BadRequestError,
  BadTaskIdError,
  ExpectationFailedError,
  HeadersTooLargeError,
  ShuttingDownError,
  UnauthorizedError,
  UriTooLongError,
  errorBody
} from '../http/errors.js'
import type { CorsPolicy } from '../http/cors-policy.js'
import { API_PATH, TASK_PATH } from '../routes/mode-prefixes.js'
import { TASK_ID_PATTERN } from '../routes/task-fetch.js'

/** Time limits against slow clients (slowloris, slow bodies, idle sockets). */
export interface Timeouts {
  /** the request head must arrive within this */
  headersMs: number
  /** the whole request (head and body) must arrive within this */
  requestMs: number
  /** an idle keep-alive connection is closed after this (above the usual 60 s of load balancers) */
  keepAliveMs: number
  /** a socket with no traffic either way is closed after this; must exceed the upstream budget */
  idleMs: number
  /** how often Node checks the two request timeouts (its default, 30 s, lets a slowloris linger) */
  checkIntervalMs: number
}

export function defaultTimeouts(upstreamTimeoutMs: number): Timeouts {
  return {
    headersMs: 10_000,
    requestMs: 60_000,
    keepAliveMs: 72_000,
    idleMs: Math.max(60_000, upstreamTimeoutMs + 10_000),
    checkIntervalMs: 1_000
  }
}

export const MAX_HEADER_BYTES = 16 * 1024
export const MAX_HEADER_COUNT = 100
export const MAX_URL_BYTES = 2048

/** Headers fit for a JSON API; a route that knows better (task fetch) sets its own cache-control. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store'
}

/** An over-long URL whose task id fails the pattern: the id is what is wrong (CONTRACT §4: any id off the pattern is a 400). */
function badLongId(request: FastifyRequest): boolean {
  const id = (request.params as { id?: unknown } | undefined)?.id
  return typeof id === 'string' && !TASK_ID.test(id)
}
const TASK_ID = new RegExp(TASK_ID_PATTERN)

/** a replica that is shutting down sends its clients elsewhere, briefly */
export const SHUTDOWN_RETRY_AFTER_SECONDS = 1

const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** SECURITY_HEADERS as header lines, for the answers written straight to the socket. */
const SECURITY_LINES = Object.entries(SECURITY_HEADERS)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('')

/** The Origin header of a request Node could not parse, read from the bytes it did receive (latin1, as on the wire). */
function rawOrigin(raw: Buffer | undefined): string | undefined {
  if (raw === undefined) return undefined
  return /\r\norigin[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r\n/i.exec(raw.toString('latin1'))?.[1]
}

/**
 * Requests Node's parser refuses (malformed, header overflow, too slow) get the contract's error shape too, with
 * the security headers and, for an allowed origin found in what arrived, the CORS headers: a browser reads why.
 */
function clientErrorHandler(cors: CorsPolicy): (err: ConnectionError, socket: Socket) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    let status = 400
    let code = 'MJGW_BAD_REQUEST'
    let message = 'malformed HTTP request'
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408
      code = 'MJGW_REQUEST_TIMEOUT'
      message = 'request not received in time'
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431
      code = 'MJGW_HEADERS_TOO_LARGE'
      message = `request head larger than ${MAX_HEADER_BYTES} bytes`
    }
    const body = JSON.stringify(errorBody(status, code, message))
    const pairs = cors.pairs(rawOrigin((err as ConnectionError & { rawPacket?: Buffer }).rawPacket))
    let corsLines = ''
    for (let i = 0; i < pairs.length; i += 2) corsLines += `${pairs[i] as string}: ${pairs[i + 1] as string}\r\n`
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${corsLines}${SECURITY_LINES}content-type: application/json; charset=utf-8\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
      )
    }
    socket.destroy(err)
  }
}

/**
 * What Node's HTTP server would refuse with a bare, bodiless answer of its own (it is told not to: the request
 * reaches the gateway, which answers in the contract's shape): an HTTP/1.1 request without `Host` (RFC 9112
 * §3.2), and an `Expect` other than 100-continue. One rule for the Fastify routes (hardening hook) and the hit lane.
 */
export function protocolRefusal(req: IncomingMessage): Error | undefined {
  if (req.httpVersion !== '1.1') return undefined
  if (req.headers.host === undefined) return new BadRequestError('an HTTP/1.1 request must carry a Host header')
  const expect = req.headers.expect
  if (expect !== undefined && !CONTINUE.test(expect)) return new ExpectationFailedError()
  return undefined
}

/** Node's own test for a 100-continue expectation (lib/_http_common.js continueExpression). */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i

type FrameworkErrors = NonNullable<FastifyServerOptions['frameworkErrors']>

/**
 * URLs the router refuses before any hook runs. Every path parameter of the gateway is a task id, so one too
 * long for the router, or one whose %-escapes do not decode (/mj/task/%ZZ/fetch), is a bad task id (400 with
 * a code of CONTRACT §6's id row). The path is not echoed back.
 */
function frameworkErrors(cors: CorsPolicy, authorized: Authorized): FrameworkErrors {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const badId = err.code === 'FST_ERR_MAX_PARAM_LENGTH' || TASK_PATH.test(request.url)
    let e: FastifyError = badId ? new BadTaskIdError() : new BadRequestError('malformed URL')
    // the /mj scope's token check has not run: without a valid token an /mj path is a 401, whatever the path
    if (API_PATH.test(request.url) && !authorized(request.headers)) e = new UnauthorizedError()
    // no hook runs for these: the CORS headers are added here
    const pairs = cors.pairs(request.headers.origin)
    for (let i = 0; i < pairs.length; i += 2) reply.header(pairs[i] as string, pairs[i + 1])
    const status = e.statusCode as number
    void reply.code(status).headers(SECURITY_HEADERS).send(errorBody(status, e.code, e.message))
  }
}



/** Fastify options of the hardening: size limits and timeouts the server enforces before any hook runs. */
export interface HardeningServerOptions {
  connectionTimeout: number
  keepAliveTimeout: number
  requestTimeout: number
  http: ServerOptions
  clientErrorHandler: (err: ConnectionError, socket: Socket) => void
  frameworkErrors: FrameworkErrors
}

/** a valid client token came with these headers (or client auth is off) */
export type Authorized = (headers: IncomingHttpHeaders) => boolean

export function hardeningServerOptions(t: Timeouts, cors: CorsPolicy, authorized: Authorized): HardeningServerOptions {
  return {
    connectionTimeout: t.idleMs,
    keepAliveTimeout: t.keepAliveMs,
    requestTimeout: t.requestMs,
    // protocolRefusal() answers these, in the contract's shape
    http: { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: t.headersMs, connectionsCheckingInterval: t.checkIntervalMs, requireHostHeader: false },
    clientErrorHandler: clientErrorHandler(cors),
    frameworkErrors: frameworkErrors(cors, authorized)
  }
}

/**
 * Refuses what no honest client sends, before any route does work: absurd URLs, header floods, a body on
 * GET/HEAD/OPTIONS. (Both content-length and transfer-encoding, the request-smuggling pair, never get this far:
 * Node's parser refuses them, and clientErrorHandler answers.) Also sets the security headers on every
 * response, errors included.
 */
async function hardeningPlugin(app: FastifyInstance): Promise<void> {
  // Fastify's own answer while closing (return503OnClosing) is bare: no code, no security or CORS headers.
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS)
    if (closing) {
      reply.header('connection', 'close').header('retry-after', SHUTDOWN_RETRY_AFTER_SECONDS)
      return done(new ShuttingDownError())
    }
    const refusal = protocolRefusal(request.raw)
    if (refusal !== undefined) {
      reply.header('connection', 'close')
      return done(refusal)
    }
    if (request.url.length > MAX_URL_BYTES) return done(badLongId(request) ? new BadTaskIdError() : new UriTooLongError(MAX_URL_BYTES))
    if (request.raw.rawHeaders.length > 2 * MAX_HEADER_COUNT) return done(new HeadersTooLargeError(MAX_HEADER_COUNT))
    const te = request.headers['transfer-encoding']
    const cl = request.headers['content-length']
    if (!BODYLESS.has(request.method) || (te === undefined && (cl === undefined || cl === '0'))) return done()
    // The unread body must not be taken for the next request on this connection.
    reply.header('connection', 'close')
    done(new BadRequestError(`a ${request.method} request must not carry a body`))
  })
}

export default fp(hardeningPlugin, { name: 'mj-hardening', fastify: '5.x' })
