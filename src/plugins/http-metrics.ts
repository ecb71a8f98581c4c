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
    // Every route's request series exists at zero from the start (its success status; other statuses appear with
    // their first answer), so dashboards and ratios show the route before its first request. HEAD routes are
    // Fastify's automatic twins of the GETs.
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) if (method !== 'HEAD') metrics.http(method, route.url ?? '', 200)
    })
    metrics.http('GET', 'unmatched', 404)
    app.addHook('onResponse', (request, reply, done) => {
      metrics.http(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode).observe(reply.elapsedTime / 1000)
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
