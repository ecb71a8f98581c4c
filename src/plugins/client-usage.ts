import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ClientKeyTable } from '../clients/client-keys.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { clientOf } from '../clients/identity.js'

export interface ClientUsageOptions {
  table: ClientKeyTable
  metrics: GatewayMetrics
}

/** mj_gateway_client_requests_total for every answer in the /mj scope (the hit lane counts its own answers). */
async function clientUsagePlugin(app: FastifyInstance, { table, metrics }: ClientUsageOptions): Promise<void> {
  app.addHook('onResponse', (request, reply, done) => {
    // hooks of this scope run for its routes only (unknown paths are answered outside it): a route pattern is there
    metrics.clientRequest(clientOf(request, table).label, request.routeOptions.url as string, reply.statusCode)
    done()
  })
}

export default fp(clientUsagePlugin, { name: 'mj-client-usage', fastify: '5.x', dependencies: ['mj-auth'] })
