import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'

export interface HttpMetricsOptions {
  metrics: GatewayMetrics
}

/** A route's `route` label: its pattern, or `unmatched` for no route and for a catch-all (routes/unrouted.ts), never by path. */
export function routeLabel(url: string | undefined, config: { unrouted?: boolean } | undefined): string {
  return url === undefined || config?.unrouted === true ? 'unmatched' : url
}

/** mj_gateway_http_* for every answer Fastify makes, by route pattern (the hit lane records its own in the same series). */
async function httpMetricsPlugin(app: FastifyInstance, { metrics }: HttpMetricsOptions): Promise<void> {
  // Every route's request series exists at zero from the start (its success status; other statuses appear with
  // their first answer), so dashboards and ratios show the route before its first request. HEAD routes are
  // Fastify's automatic twins of the GETs.
  app.addHook('onRoute', (route) => {
    const label = routeLabel(route.url, route.config)
    if (label === 'unmatched') return
    for (const method of [route.method].flat()) if (method !== 'HEAD') metrics.http(method, label, 200)
  })
  metrics.http('GET', 'unmatched', 404)
  app.addHook('onResponse', (request, reply, done) => {
    metrics.http(request.method, routeLabel(request.routeOptions.url, request.routeOptions.config), reply.statusCode).observe(reply.elapsedTime / 1000)
    done()
  })
}

export default fp(httpMetricsPlugin, { name: 'mj-http-metrics', fastify: '5.x' })
