import type { FastifyInstance } from 'fastify'
import { taskIdParams } from '../tasks/task-id.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'
import { forward, type ForwardDeps } from './forward.js'
import { pathsOfKind } from './passthrough-table.js'

export interface TaskRouteDeps extends ForwardDeps {
  ownership: Ownership
  clients: ClientKeyTable
}

/**
 * GET /mj/task/{id}/image-seed, and any other path of PASSTHROUGH_ROUTES with an id in it: the id checked like
 * fetch's, only for a client who may see the task (docs/tenancy.md §2), forwarded as it is (a query: retried like
 * any GET), under the scope's mode prefix.
 */
export async function imageSeedRoutes(app: FastifyInstance, { config, upstream, ownership, clients }: TaskRouteDeps): Promise<void> {
  const mode = app.prefix
  for (const path of pathsOfKind(config.passthroughRoutes, 'task')) {
    app.get<{ Params: { id: string } }>(path, { schema: { params: taskIdParams } }, async (request, reply) => {
      const id = request.params.id
      const client = clientOf(request, clients)
      await ownership.assertReadable(client, id, path)
      return forward(upstream, reply, { method: 'GET', path: mode + path.replace(':id', id), idempotent: true, client: client.name })
    })
  }
}
