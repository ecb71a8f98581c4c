import type { FastifyInstance } from 'fastify'
import type { KeyState } from '../upstream/key-health.js'

export type DependencyState = 'up' | 'down' | 'off'

interface Deps {
  redisState: () => DependencyState
  /** whether the upstream refuses the gateway's key lately; absent = not tracked */
  keyState?: () => KeyState
}

export async function healthRoutes(app: FastifyInstance, { redisState, keyState }: Deps): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  // A down Redis does not make the gateway unready: it serves from its own cache and upstream. Nor does a rejected
  // key (cached tasks are still served, and every replica shares the key): still 200, but the body says degraded and
  // why, so an operator (and a readiness dashboard) sees it at once.
  app.get('/readyz', async () => {
    const redis = redisState()
    const key = keyState?.()
    if (key === undefined || !key.rejected) return { status: 'ready', redis }
    return {
      status: 'degraded',
      redis,
      upstream: 'key_rejected',
      reason: `upstream answered ${key.status} to the gateway's key ${key.secondsAgo} s ago: requests that need upstream fail (502 MJGW_UPSTREAM_AUTH); cached tasks are still served`
    }
  })
}
