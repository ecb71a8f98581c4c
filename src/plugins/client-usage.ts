import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ClientKeyTable } from '../clients/client-keys.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { clientOf } from '../clients/identity.js'
import { routeLabel } from './http-metrics.js'

export interface ClientUsageOptions {
  table: ClientKeyTable
  metrics: GatewayMetrics
}

/** mj_gateway_client_requests_total for every answer in the /mj scope (the hit lane counts its own answers). */
async function clientUsagePlugin(app: FastifyInstance, { table, metrics }: ClientUsageOptions): Promise<void> {
  app.addHook('onResponse', (request, reply, done) => {
    // hooks of this scope run for its routes only, the /mj catch-all among them (routes/unrouted.ts): the same
    // `route` label as mj_gateway_http_requests_total, `unmatched` for it, never a raw path
    metrics.clientRequest(clientOf(request, table).label, routeLabel(request.routeOptions.url, request.routeOptions.config), reply.statusCode)
    done()
  })
}

export default fp(clientUsagePlugin, { name: 'mj-client-usage', fastify: '5.x', dependencies: ['mj-auth'] })
