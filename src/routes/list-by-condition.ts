import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { Config } from '../config.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { LIST_PATH, type TaskListService } from '../tasks/list-service.js'
import { TASK_ID_PATTERN } from '../tasks/task-id.js'
import { strictBody } from './strict-body.js'
import { sendAnswer } from './send-answer.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'

export const MAX_LIST_IDS = 100

/**
 * Ids as strings, or as integers (a popular Vue frontend sends its gallery's ids as JSON numbers): a number is the
 * id of its decimal string. Only safe integers, so the number is exactly the digits the client meant; negatives
 * and fractions are not ids.
 */
const ListId = Type.Union([Type.String({ pattern: TASK_ID_PATTERN }), Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })])
const ListBody = Type.Object({
  ids: Type.Array(ListId, { minItems: 1, maxItems: MAX_LIST_IDS })
})

/** POST /mj/task/list-by-condition: cached terminal tasks from the cache, the rest in one upstream call. */
interface Deps {
  config: Config
  list: TaskListService
  ownership: Ownership
  clients: ClientKeyTable
}

export async function listByConditionRoutes(app: FastifyInstance, { config, list, ownership, clients }: Deps): Promise<void> {
  if (!config.passthroughRoutes.includes(LIST_PATH)) return
  // '' or a mode prefix (routes/mode-prefixes.ts): the upstream call goes there, the cache is shared
  const mode = app.prefix
  app.post<{ Body: { ids: Array<string | number> } }>(LIST_PATH, { schema: { body: ListBody }, validatorCompiler: strictBody }, async (request, reply) => {
    // a numeric id is the id of its decimal string: [17, "17"] is one id
    // docs/tenancy.md §2: another client's ids are left out as unknown ids are, and never asked upstream
    const ids = await ownership.readable(clientOf(request, clients), request.body.ids.map(String), LIST_PATH)
    const listed = await list.list(ids, mode)
    if (listed.kind === 'answer') return sendAnswer(reply, listed.answer)
    return reply
      .header('content-type', JSON_CONTENT_TYPE)
      .header('cache-control', 'no-cache')
      .header('x-cache-hits', String(listed.hits))
      .send(listed.body)
  })
}
