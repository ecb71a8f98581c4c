import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { LIST_PATH, type TaskListService } from '../tasks/list-service.js'
import { TASK_ID_PATTERN } from '../tasks/task-id.js'
import { strictBody } from './strict-body.js'
import { sendAnswer } from './send-answer.js'

export const MAX_LIST_IDS = 100

const ListBody = Type.Object({
  ids: Type.Array(Type.String({ pattern: TASK_ID_PATTERN }), { minItems: 1, maxItems: MAX_LIST_IDS })
})

/** POST /mj/task/list-by-condition: cached terminal tasks from the cache, the rest in one upstream call. */
export async function listByConditionRoutes(app: FastifyInstance, { list }: { list: TaskListService }): Promise<void> {
  app.post<{ Body: { ids: string[] } }>(LIST_PATH, { schema: { body: ListBody }, validatorCompiler: strictBody }, async (request, reply) => {
    const listed = await list.list(request.body.ids)
    if (listed.kind === 'answer') return sendAnswer(reply, listed.answer)
    return reply
      .header('content-type', JSON_CONTENT_TYPE)
      .header('cache-control', 'no-cache')
      .header('x-cache-hits', String(listed.hits))
      .send(listed.body)
  })
}
