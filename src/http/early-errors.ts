import type { Socket } from 'node:net'
import { STATUS_CODES } from 'node:http'
import type { ConnectionError, FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { BadRequestError, BadTaskIdError, errorBody } from './errors.js'
import { MAX_HEADER_BYTES } from './request-checks.js'
import { SECURITY_HEADERS } from './security-headers.js'

const RAW_SECURITY_HEADERS = Object.entries(SECURITY_HEADERS)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('')

/** Requests Node's parser refuses (malformed, header overflow, too slow) get the error shape too, on the bare socket. */
export function clientErrorHandler(err: ConnectionError, socket: Socket): void {
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
        `content-length: ${Buffer.byteLength(body)}\r\n${RAW_SECURITY_HEADERS}connection: close\r\n\r\n${body}`
    )
  }
  socket.destroy(err)
}

/**
 * URLs the router refuses before any hook runs (Fastify's frameworkErrors). Every path parameter of the gateway is a
 * task id, so one too long for the router, or one whose %-escapes do not decode (/mj/task/%ZZ/fetch), is a bad task
 * id (400 MJGW_BAD_TASK_ID). The path is not echoed back.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const badId = err.code === 'FST_ERR_MAX_PARAM_LENGTH' || request.url.startsWith('/mj/task/')
  const e = badId ? new BadTaskIdError() : new BadRequestError('malformed URL')
  void reply.code(e.statusCode).headers(SECURITY_HEADERS).send(errorBody(e.statusCode, e.code, e.message))
}
