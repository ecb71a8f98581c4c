import type { FastifyInstance } from 'fastify'
import { errorBody } from '../http/errors.js'
import { NOTIFY_ROUTE, secretMatches } from '../push/notify-hook.js'
import { taskState } from '../push/task-state.js'
import type { NotifyOutcome } from '../metrics/push-metrics.js'

interface Deps {
  secret: string
  /** applies a callback's body to a watched task; false when the task is not watched (anywhere) */
  accept: (id: string, body: Buffer) => Promise<boolean>
  count: (outcome: NotifyOutcome) => void
}

const NOT_FOUND = errorBody(404, 'MJGW_NOT_FOUND', 'no such route (POST)')

/**
 * The upstream's task callbacks (CONTRACT §11 "webhooks in"): POST {PUBLIC_URL}/gateway/notify/{secret} with the task
 * JSON. Only a body for a task the gateway watches counts (as a refresh of it); a wrong secret, another id, a body
 * that is not a task: 404, exactly what an unknown route answers, and nothing changes.
 */
export async function notifyCallbackRoutes(app: FastifyInstance, { secret, accept, count }: Deps): Promise<void> {
  // the bytes as sent: they are what subscribers and /fetch get
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  app.post<{ Params: { secret: string }; Body: Buffer | undefined }>(NOTIFY_ROUTE, async (request, reply) => {
    if (!secretMatches(request.params.secret, secret)) {
      count('rejected')
      return reply.code(404).send(NOT_FOUND)
    }
    // no content-type at all: no parser ran, no body
    const body = request.body ?? Buffer.alloc(0)
    const id = taskState(body)?.id
    if (id === undefined || !(await accept(id, body))) {
      count('ignored')
      return reply.code(404).send(NOT_FOUND)
    }
    count('accepted')
    return reply.code(200).send({ ok: true })
  })
}
