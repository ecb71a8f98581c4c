import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

/**
 * One access-log line per answered request, at info: request, status and response time, with the request id.
 * It stands in for Fastify's own request logging (off in app.ts), which writes two lines per request.
 * Written by the root logger with the id as a field: the same JSON as a request child's line, without the child.
 */
const INFO_OR_BELOW = new Set(['info', 'debug', 'trace'])

async function requestLog(app: FastifyInstance): Promise<void> {
  if (!INFO_OR_BELOW.has(app.log.level)) return
  const log = app.log
  app.addHook('onResponse', (request, reply, done) => {
    log.info({ reqId: request.id, req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
    done()
  })
}

export default fp(requestLog, { name: 'mj-request-log', fastify: '5.x' })
