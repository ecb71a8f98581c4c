import { timingSafeEqual, createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { UnauthorizedError } from '../http/errors.js'

export interface MetricsRouteOptions {
  metrics: GatewayMetrics
  /** METRICS_TOKEN: when non-empty, /metrics requires `Authorization: Bearer {token}` */
  token: string
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** GET /metrics: the Prometheus text; compared by digest, so the time taken says nothing about a guess. */
export async function metricsRoutes(app: FastifyInstance, { metrics, token }: MetricsRouteOptions): Promise<void> {
  const expected = token === '' ? undefined : digest(`Bearer ${token}`)
  app.get('/metrics', async (request, reply) => {
    if (expected !== undefined && !timingSafeEqual(digest(request.headers.authorization ?? ''), expected)) {
      throw new UnauthorizedError()
    }
    const text = await metrics.registry.metrics()
    return reply.header('content-type', metrics.registry.contentType).header('cache-control', 'no-store').send(text)
  })
}
