import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { bodyOnBodyless, protocolProblem, requestProblem } from '../http/request-checks.js'
import { SECURITY_HEADERS } from '../http/security-headers.js'
import { BadTaskIdError, ShuttingDownError, UriTooLongError } from '../http/errors.js'
import { TASK_ID_PATTERN } from '../tasks/task-id.js'

/** a replica that is shutting down sends its clients elsewhere, briefly */
export const SHUTDOWN_RETRY_AFTER_SECONDS = 1

const TASK_ID = new RegExp(TASK_ID_PATTERN)

/** An over-long URL whose task id fails the pattern: the id is what is wrong (any id off the pattern is a 400). */
function badLongId(request: FastifyRequest): boolean {
  const id = (request.params as { id?: unknown } | undefined)?.id
  return typeof id === 'string' && !TASK_ID.test(id)
}

/**
 * The request pre-checks (src/http/request-checks.ts, which the hit lane calls too) before any route does work, and
 * the security headers on every response, errors included. A request that reaches the app while it closes gets a
 * 503 in the contract's shape here (Fastify's own, return503OnClosing, has no code and no headers).
 */
async function hardeningPlugin(app: FastifyInstance): Promise<void> {
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
    let problem = requestProblem(request.raw)
    // The unread body must not be taken for the next request on this connection, nor a request Node would refuse.
    if (problem !== undefined && (bodyOnBodyless(request.raw) || protocolProblem(request.raw) !== undefined)) reply.header('connection', 'close')
    if (problem instanceof UriTooLongError && badLongId(request)) problem = new BadTaskIdError()
    done(problem)
  })
}

export default fp(hardeningPlugin, { name: 'mj-hardening', fastify: '5.x' })
