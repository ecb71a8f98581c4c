import type { FastifyInstance } from 'fastify'

export type DependencyState = 'up' | 'down' | 'off'

interface Deps {
  redisState: () => DependencyState
}

export async function healthRoutes(app: FastifyInstance, { redisState }: Deps): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  // A down Redis does not make the gateway unready: it serves from its own cache and upstream.
  app.get('/readyz', async () => ({ status: 'ready', redis: redisState() }))
}
