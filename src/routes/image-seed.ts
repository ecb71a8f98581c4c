import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import type { UpstreamClient } from '../upstream/client.js'
import { taskIdParams } from '../tasks/task-id.js'
import { forward } from './forward.js'
import { routeKind } from './passthrough-table.js'

interface Deps {
  config: Config
  upstream: UpstreamClient
}

/**
 * GET /mj/task/{id}/image-seed, and any other path of PASSTHROUGH_ROUTES with an id in it: the id checked like
 * fetch's, forwarded as it is (a query: retried like any GET), under the scope's mode prefix.
 */
export async function imageSeedRoutes(app: FastifyInstance, { config, upstream }: Deps): Promise<void> {
  const mode = app.prefix
  for (const path of config.passthroughRoutes) {
    if (routeKind(path) !== 'task') continue
    app.get<{ Params: { id: string } }>(path, { schema: { params: taskIdParams } }, async (request, reply) =>
      forward(upstream, reply, { method: 'GET', path: mode + path.replace(':id', request.params.id), idempotent: true })
    )
  }
}
