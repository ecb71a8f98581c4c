import type { FastifyInstance } from 'fastify'
import { taskIdParams } from '../tasks/task-id.js'
import { forward, type ForwardDeps } from './forward.js'
import { pathsOfKind } from './passthrough-table.js'

/**
 * GET /mj/task/{id}/image-seed, and any other path of PASSTHROUGH_ROUTES with an id in it: the id checked like
 * fetch's, forwarded as it is (a query: retried like any GET), under the scope's mode prefix.
 */
export async function imageSeedRoutes(app: FastifyInstance, { config, upstream }: ForwardDeps): Promise<void> {
  const mode = app.prefix
  for (const path of pathsOfKind(config.passthroughRoutes, 'task')) {
    app.get<{ Params: { id: string } }>(path, { schema: { params: taskIdParams } }, async (request, reply) =>
      forward(upstream, reply, { method: 'GET', path: mode + path.replace(':id', request.params.id), idempotent: true })
    )
  }
}
