import type { Socket } from 'node:net'
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http'
import type { ConnectionError, FastifyError, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import { BadTaskIdError } from '../tasks/task-id.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { UnauthorizedError, errorBody } from './errors.js'
import { BadRequestError, MAX_HEADER_BYTES } from './request-checks.js'
import { SECURITY_HEADERS } from './security-headers.js'
import type { CorsPolicy } from './cors-policy.js'
import { replyHeaders, type HeaderList } from './header-list.js'
import { API_PATH, TASK_PATH } from '../routes/mode-prefixes.js'

const RAW_SECURITY_HEADERS = Object.entries(SECURITY_HEADERS)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('')

/** The Origin header of a request Node could not parse, read from the bytes it did receive (latin1, as on the wire). */
function rawOrigin(raw: Buffer | undefined): string | undefined {
  if (raw === undefined) return undefined
  return /\r\norigin[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r\n/i.exec(raw.toString('latin1'))?.[1]
}

type ClientErrorHandler = NonNullable<FastifyServerOptions['clientErrorHandler']>
type FrameworkErrors = NonNullable<FastifyServerOptions['frameworkErrors']>

/**
 * Requests Node's parser refuses (malformed, header overflow, too slow) get the error shape too, on the bare socket,
 * with the security headers and, for an allowed origin found in what did arrive, the CORS headers: a browser reads why.
 */
export function clientErrorHandler(cors: CorsPolicy): ClientErrorHandler {
  return (err, socket) => answerClientError(cors, err, socket)
}

function answerClientError(cors: CorsPolicy, err: ConnectionError, socket: Socket): void {
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
  const corsHeaders: HeaderList = []
  cors.responseHeaders(rawOrigin((err as ConnectionError & { rawPacket?: Buffer }).rawPacket), corsHeaders)
  let rawCors = ''
  for (let i = 0; i < corsHeaders.length; i += 2) rawCors += `${corsHeaders[i] as string}: ${corsHeaders[i + 1] as string}\r\n`
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${rawCors}content-type: ${JSON_CONTENT_TYPE}\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n${RAW_SECURITY_HEADERS}connection: close\r\n\r\n${body}`
    )
  }
  socket.destroy(err)
}

/** a valid client token came with these headers (or client auth is off) */
export type Authorized = (headers: IncomingHttpHeaders) => boolean

/**
 * URLs the router refuses before any hook runs (Fastify's frameworkErrors). Every path parameter of the gateway is a
 * task id, so one too long for the router, or one whose %-escapes do not decode (/mj/task/%ZZ/fetch), is a bad task
 * id (400 MJGW_BAD_TASK_ID). The path is not echoed back. No hook runs for these, so the CORS headers and the
 * /mj scope's token rule (401 without a valid token, whatever the path) are applied here.
 */
export function frameworkErrors(cors: CorsPolicy, authorized: Authorized): FrameworkErrors {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const badId = err.code === 'FST_ERR_MAX_PARAM_LENGTH' || TASK_PATH.test(request.url)
    let e: FastifyError = badId ? new BadTaskIdError() : new BadRequestError('malformed URL')
    if (API_PATH.test(request.url) && !authorized(request.headers)) e = new UnauthorizedError()
    const corsHeaders: HeaderList = []
    cors.responseHeaders(request.headers.origin, corsHeaders)
    replyHeaders(reply, corsHeaders)
    const status = e.statusCode as number
    void reply.code(status).headers(SECURITY_HEADERS).send(errorBody(status, e.code, e.message))
  }
}
