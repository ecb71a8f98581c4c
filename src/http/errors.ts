import { STATUS_CODES } from 'node:http'
import createError from '@fastify/error'
import type { FastifyError, FastifyInstance } from 'fastify'

// Each error is defined beside the rule that raises it; every one can be imported from here.
export { BadTaskIdError } from '../tasks/task-id.js'
export { BadRequestError, ExpectationFailedError, HeadersTooLargeError, UriTooLongError } from './request-checks.js'
export { UpstreamAuthError, UpstreamBadResponseError, UpstreamHttpError, UpstreamTimeoutError, UpstreamUnreachableError } from '../upstream/failures.js'
export { ImageGoneError, ImageNotFoundError, ImageStoreError, RangeNotSatisfiableError } from '../images/image-errors.js'

export const UnauthorizedError = createError('MJGW_UNAUTHORIZED', 'missing or invalid client token', 401)
export const RateLimitedError = createError('MJGW_RATE_LIMITED', 'rate limit exceeded, retry in %s', 429)
export const RouteNotFoundError = createError('MJGW_NOT_FOUND', 'no such route (%s)', 404)
export const OverloadedError = createError('MJGW_OVERLOADED', 'gateway overloaded, retry later', 503)
export const QuotaExceededError = createError('MJGW_QUOTA_EXCEEDED', 'daily submit quota of %s reached, retry after 00:00 UTC', 429)
export const ShuttingDownError = createError('MJGW_SHUTTING_DOWN', 'gateway shutting down, retry shortly', 503)
export const TaskNotFoundError = createError('MJGW_TASK_NOT_FOUND', 'task %s not found upstream', 404)

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
    void reply.send(new RouteNotFoundError(request.method))
  })
}

