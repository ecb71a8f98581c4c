import type { FastifyReply } from 'fastify'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import type { Answer } from '../upstream/answer.js'

/** The one way an upstream answer reaches a client: its status, body, content-type and retry-after; never cached. */
export function sendAnswer(reply: FastifyReply, answer: Answer): FastifyReply {
  // an empty header is as good as none
  reply.code(answer.status).header('content-type', answer.contentType || JSON_CONTENT_TYPE).header('cache-control', 'no-store')
  if (answer.retryAfter) reply.header('retry-after', answer.retryAfter)
  return reply.send(answer.body)
}
