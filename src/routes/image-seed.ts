import type { FastifyInstance } from 'fastify'
import type { UpstreamClient } from '../upstream/client.js'
import { taskIdParams } from '../tasks/task-id.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'
import { forward } from './forward.js'

export const SEED_ROUTE = '/mj/task/:id/image-seed'

interface Deps {
  upstream: UpstreamClient
  ownership: Ownership
  clients: ClientKeyTable
}

/** GET /mj/task/{id}/image-seed: the owner's (docs/tenancy.md), forwarded as it is (a query: retried like any GET). */
export async function imageSeedRoutes(app: FastifyInstance, { upstream, ownership, clients }: Deps): Promise<void> {
  app.get<{ Params: { id: string } }>(SEED_ROUTE, { schema: { params: taskIdParams } }, async (request, reply) => {
    const id = request.params.id
    const client = clientOf(request, clients)
    await ownership.assertReadable(client, id, SEED_ROUTE)
    return forward(upstream, reply, { method: 'GET', path: `/mj/task/${id}/image-seed`, idempotent: true, client: client.name })
  })
}
