import type { FastifyInstance } from 'fastify'
import type { UpstreamClient } from '../upstream/client.js'
import { taskIdParams } from '../tasks/task-id.js'
import { forward } from './forward.js'

/** GET /mj/task/{id}/image-seed: forwarded as it is (a query: retried like any GET). */
export async function imageSeedRoutes(app: FastifyInstance, { upstream }: { upstream: UpstreamClient }): Promise<void> {
  app.get<{ Params: { id: string } }>('/mj/task/:id/image-seed', { schema: { params: taskIdParams } }, async (request, reply) =>
    forward(upstream, reply, { method: 'GET', path: `/mj/task/${request.params.id}/image-seed`, idempotent: true })
  )
}
