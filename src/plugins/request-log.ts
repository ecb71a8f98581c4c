import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AccessLog } from '../logging/access-log.js'

export interface RequestLogOptions {
  /** undefined while LOG_LEVEL is above info */
  accessLog: AccessLog | undefined
}

/**
 * One access-log line per answered request (src/logging/access-log.ts). It stands in for Fastify's own request logging
 * (off in app.ts), which writes two lines per request.
 */
async function requestLog(app: FastifyInstance, { accessLog }: RequestLogOptions): Promise<void> {
  if (accessLog === undefined) return
  app.addHook('onResponse', (request, reply, done) => {
    accessLog.write(request.raw, reply.statusCode, request.mjClient, reply.elapsedTime, request.id, request.routeOptions.url)
    done()
  })
}

export default fp(requestLog, { name: 'mj-request-log', fastify: '5.x' })
