import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { LIST_PATH, type TaskListService } from '../tasks/list-service.js'
import { TASK_ID_PATTERN } from '../tasks/task-id.js'
import { strictBody } from './strict-body.js'
import { sendAnswer } from './send-answer.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'

export const MAX_LIST_IDS = 100

const ListBody = Type.Object({
  ids: Type.Array(Type.String({ pattern: TASK_ID_PATTERN }), { minItems: 1, maxItems: MAX_LIST_IDS })
})

interface Deps {
  list: TaskListService
  ownership: Ownership
  clients: ClientKeyTable
}

/** POST /mj/task/list-by-condition: cached terminal tasks from the cache, the rest in one upstream call. */
export async function listByConditionRoutes(app: FastifyInstance, { list, ownership, clients }: Deps): Promise<void> {
  app.post<{ Body: { ids: string[] } }>(LIST_PATH, { schema: { body: ListBody }, validatorCompiler: strictBody }, async (request, reply) => {
    // docs/tenancy.md: another client's ids are left out as unknown ids are, and never asked upstream
    const ids = await ownership.readable(clientOf(request, clients), request.body.ids, LIST_PATH)
    const listed = await list.list(ids)
    if (listed.kind === 'answer') return sendAnswer(reply, listed.answer)
    return reply
      .header('content-type', JSON_CONTENT_TYPE)
      .header('cache-control', 'no-cache')
      .header('x-cache-hits', String(listed.hits))
      .send(listed.body)
  })
}
