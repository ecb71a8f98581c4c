import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'

export interface HttpMetricsOptions {
  metrics: GatewayMetrics
}

/** mj_gateway_http_* for every answer Fastify makes, by route pattern (the hit lane records its own in the same series). */
async function httpMetricsPlugin(app: FastifyInstance, { metrics }: HttpMetricsOptions): Promise<void> {
  // Every route's request series exists at zero from the start (its success status; other statuses appear with
  // their first answer), so dashboards and ratios show the route before its first request. HEAD routes are
  // Fastify's automatic twins of the GETs.
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') metrics.http(method, route.url, 200)
  })
  metrics.http('GET', 'unmatched', 404)
  app.addHook('onResponse', (request, reply, done) => {
    // a catch-all (routes/unrouted.ts) counts with every other path no route knows, never by its pattern
    const route = request.routeOptions.config.unrouted === true ? undefined : request.routeOptions.url
    metrics.http(request.method, route ?? 'unmatched', reply.statusCode).observe(reply.elapsedTime / 1000)
    done()
  })
}

export default fp(httpMetricsPlugin, { name: 'mj-http-metrics', fastify: '5.x' })
