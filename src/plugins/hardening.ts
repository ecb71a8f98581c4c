import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { bodyOnBodyless, requestProblem } from '../http/request-checks.js'
import { SECURITY_HEADERS } from '../http/security-headers.js'

/**
 * The request pre-checks (src/http/request-checks.ts, which the hit lane calls too) before any route does work, and
 * the security headers on every response, errors included.
 */
async function hardeningPlugin(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS)
    const problem = requestProblem(request.raw)
    // The unread body must not be taken for the next request on this connection.
    if (problem !== undefined && bodyOnBodyless(request.raw)) reply.header('connection', 'close')
    done(problem)
  })
}

export default fp(hardeningPlugin, { name: 'mj-hardening', fastify: '5.x' })
