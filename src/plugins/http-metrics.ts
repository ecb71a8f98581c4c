import { timingSafeEqual, createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { UnauthorizedError } from '../http/errors.js'

export interface MetricsPluginOptions {
  metrics: GatewayMetrics
  /** when non-empty, /metrics requires `Authorization: Bearer {token}` */
  token: string
  /** record mj_gateway_http_* per request; default true (false only to measure what the hook costs) */
  httpHook?: boolean
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

async function metricsPlugin(app: FastifyInstance, { metrics, token, httpHook = true }: MetricsPluginOptions): Promise<void> {
  if (httpHook) {
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.config.unrouted === true ? undefined : request.routeOptions.url
      metrics.http(request.method, route ?? 'unmatched', reply.statusCode).observe(reply.elapsedTime / 1000)
      done()
    })
  }

  const expected = token === '' ? undefined : digest(`Bearer ${token}`)
  app.get('/metrics', async (request, reply) => {
    if (expected !== undefined && !timingSafeEqual(digest(request.headers.authorization ?? ''), expected)) {
      throw new UnauthorizedError()
    }
    const text = await metrics.registry.metrics()
    return reply.header('content-type', metrics.registry.contentType).header('cache-control', 'no-store').send(text)
  })
}

export default fp(metricsPlugin, { name: 'mj-metrics', fastify: '5.x' })
