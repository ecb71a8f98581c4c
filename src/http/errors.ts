import { STATUS_CODES } from 'node:http'
import createError from '@fastify/error'
import type { FastifyError, FastifyInstance } from 'fastify'
import { TASK_ID_PATTERN } from '../tasks/task-id.js'

// what the client asked wrongly
export const BadTaskIdError = createError('MJGW_BAD_TASK_ID', `task id must match ${TASK_ID_PATTERN}`, 400)
export const UnauthorizedError = createError('MJGW_UNAUTHORIZED', 'missing or invalid client token', 401)
export const RateLimitedError = createError('MJGW_RATE_LIMITED', 'rate limit exceeded, retry in %s', 429)
export const BadRequestError = createError('MJGW_BAD_REQUEST', '%s', 400)
export const UriTooLongError = createError('MJGW_URI_TOO_LONG', 'request URL longer than %s bytes', 414)
export const HeadersTooLargeError = createError('MJGW_HEADERS_TOO_LARGE', 'more than %s request headers', 431)

// what the gateway or its upstream could not do
export const OverloadedError = createError('MJGW_OVERLOADED', 'gateway overloaded, retry later', 503)
export const QuotaExceededError = createError('MJGW_QUOTA_EXCEEDED', 'daily submit quota of %s reached, retry after 00:00 UTC', 429)
export const TaskNotFoundError = createError('MJGW_TASK_NOT_FOUND', 'task %s not found upstream', 404)
export const UpstreamAuthError = createError('MJGW_UPSTREAM_AUTH', 'upstream refused the gateway credentials (HTTP %s)', 502)
export const UpstreamHttpError = createError('MJGW_UPSTREAM_ERROR', 'upstream failed with HTTP %s', 502)
export const UpstreamUnreachableError = createError('MJGW_UPSTREAM_UNREACHABLE', 'upstream unreachable (%s)', 502)
export const UpstreamTimeoutError = createError('MJGW_UPSTREAM_TIMEOUT', 'upstream did not answer within %s ms', 504)
export const UpstreamBadResponseError = createError('MJGW_UPSTREAM_BAD_RESPONSE', 'upstream sent an unusable response: %s', 502)

export interface ErrorBody {
  statusCode: number
  code: string
  error: string
  message: string
}

export function errorBody(statusCode: number, code: string, message: string): ErrorBody {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

/** The one error handler: Fastify's error shape, and a 5xx that is not ours never shows its message. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const raw = err.statusCode ?? 500
    const statusCode = raw >= 400 && raw <= 599 ? raw : 500
    const ours = typeof err.code === 'string' && err.code.startsWith('MJGW_')
    if (statusCode >= 500 && !ours) {
      request.log.error({ err }, 'unhandled error')
      void reply.code(500).send(errorBody(500, 'MJGW_INTERNAL', 'internal error'))
      return
    }
    if (statusCode >= 500) request.log.warn({ code: err.code, reason: err.message }, 'answered with a gateway error')
    const code = err.code ?? `HTTP_${statusCode}`
    void reply.code(statusCode).send(errorBody(statusCode, code, err.message))
  })
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody(404, 'MJGW_NOT_FOUND', `no such route (${request.method})`))
  })
}

