import { timingSafeEqual, createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { GatewayMetrics } from '../metrics.js'
import { UnauthorizedError } from '../errors.js'

export interface MetricsPluginOptions {
  metrics: GatewayMetrics
  /** when non-empty, /metrics requires `Authorization: Bearer {token}` */
  token: string
  /** record mj_gateway_http_* per request; default true (false only to measure what the hook costs) */
  httpHook?: boolean
}

interface Children {
  count: { inc(): void }
  duration: { observe(v: number): void }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

async function metricsPlugin(app: FastifyInstance, { metrics, token, httpHook = true }: MetricsPluginOptions): Promise<void> {
  // Label children by method+route+status, so a request costs a Map lookup, not a label hash.
  const children = new Map<string, Children>()
  if (httpHook) app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const status = reply.statusCode
    const key = `${request.method} ${status} ${route}`
    let c = children.get(key)
    if (c === undefined) {
      const labels = { method: request.method, route, status_code: String(status) }
      c = { count: metrics.httpRequests.labels(labels), duration: metrics.httpDuration.labels(labels) }
      children.set(key, c)
    }
    c.count.inc()
    c.duration.observe(reply.elapsedTime / 1000)
    done()
  })

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
