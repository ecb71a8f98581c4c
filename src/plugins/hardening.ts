import type { Socket } from 'node:net'
import { STATUS_CODES, type ServerOptions } from 'node:http'
import fp from 'fastify-plugin'
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import { BadRequestError, BadTaskIdError, HeadersTooLargeError, UriTooLongError, errorBody } from '../http/errors.js'

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

const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Requests Node's parser refuses (malformed, header overflow, too slow) get the error shape of docs/errors.md §1 too. */
function clientErrorHandler(err: ConnectionError, socket: Socket): void {
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
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nx-content-type-options: nosniff\r\ncache-control: no-store\r\n` +
        `connection: close\r\n\r\n${body}`
    )
  }
  socket.destroy(err)
}

type FrameworkErrors = NonNullable<FastifyServerOptions['frameworkErrors']>

/**
 * URLs the router refuses before any hook runs. Every path parameter of the gateway is a task id, so one too
 * long for the router, or one whose %-escapes do not decode (/mj/task/%ZZ/fetch), is a bad task id (400 with
 * a code of the id rows of docs/errors.md §2). The path is not echoed back.
 */
function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const badId = err.code === 'FST_ERR_MAX_PARAM_LENGTH' || request.url.startsWith('/mj/task/')
  const e = badId ? new BadTaskIdError() : new BadRequestError('malformed URL')
  void reply.code(e.statusCode).headers(SECURITY_HEADERS).send(errorBody(e.statusCode, e.code, e.message))
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

export function hardeningServerOptions(t: Timeouts): HardeningServerOptions {
  return {
    connectionTimeout: t.idleMs,
    keepAliveTimeout: t.keepAliveMs,
    requestTimeout: t.requestMs,
    http: { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: t.headersMs, connectionsCheckingInterval: t.checkIntervalMs },
    clientErrorHandler,
    frameworkErrors
  }
}

/**
 * Refuses what no honest client sends, before any route does work: absurd URLs, header floods, a body on
 * GET/HEAD/OPTIONS. (Both content-length and transfer-encoding, the request-smuggling pair, never get this far:
 * Node's parser refuses them, and clientErrorHandler answers.) Also sets the security headers on every
 * response, errors included.
 */
async function hardeningPlugin(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS)
    if (request.url.length > MAX_URL_BYTES) return done(new UriTooLongError(MAX_URL_BYTES))
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
