import type { FastifyInstance } from 'fastify'
import { errorBody } from '../http/errors.js'
import { NOTIFY_ROUTE, secretMatches } from '../push/notify-hook.js'
import { taskState } from '../push/task-state.js'
import type { NotifyOutcome } from '../metrics/push-metrics.js'

interface Deps {
  secret: string
  /** takes a callback for task `id` as a sign that it changed; false when the task is not watched (anywhere) */
  accept: (id: string) => Promise<boolean>
  count: (outcome: NotifyOutcome) => void
}

const NOT_FOUND = errorBody(404, 'MJGW_NOT_FOUND', 'no such route (POST)')

/**
 * The upstream's task callbacks (CONTRACT §11 "webhooks in"): POST {PUBLIC_URL}/gateway/notify/{secret} with the task
 * JSON. Only a body naming a task the gateway watches counts: that task is refreshed from the upstream at once (its
 * body is not trusted: docs/push.md §5); a wrong secret, another id, a body that is not a task: 404, exactly what an
 * unknown route answers, and nothing changes.
 */
export async function notifyCallbackRoutes(app: FastifyInstance, { secret, accept, count }: Deps): Promise<void> {
  // the bytes as sent: only the task id is read from them
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
    if (id === undefined || !(await accept(id))) {
      count('ignored')
      return reply.code(404).send(NOT_FOUND)
    }
    count('accepted')
    return reply.code(200).send({ ok: true })
  })
}
