import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import type { TaskCache } from '../cache/task-cache.js'
import type { TaskService } from '../tasks/fetch-service.js'
import type { UpstreamClient } from '../upstream/client.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import type { RedisConnection } from '../redis/connection.js'
import type { RedisSharedTier } from '../redis/shared-tier.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { TaskNotFoundError } from '../http/errors.js'
import { PushMetrics } from '../metrics/push-metrics.js'
import { taskEventsRoutes, type TaskAccess } from '../routes/task-events.js'
import { notifyCallbackRoutes } from '../routes/notify-callback.js'
import { notifySecret } from './notify-hook.js'
import { Refresher } from './refresher.js'
import { Subscribers } from './subscribers.js'
import { WatchHub } from './watch-hub.js'
import { RedisRelay } from './redis-relay.js'

export interface PushDeps {
  config: Config
  cache: TaskCache
  service: TaskService
  upstream: UpstreamClient
  metrics: GatewayMetrics
  redis: RedisConnection | undefined
  shared: RedisSharedTier | undefined
  clientKeys: ClientKeyTable
  heartbeatMs?: number | undefined
  /** ownership (CONTRACT §9): whether a client may read a task */
  access: TaskAccess
}

export interface PushFeatures {
  /** a /fetch answered a live task */
  fetched: (id: string, now: number) => void
  /** the events routes, for the /mj scope */
  routes: (mj: FastifyInstance) => Promise<void>
  /** the upstream's callback route, outside /mj */
  callbacks: (app: FastifyInstance) => Promise<void>
}

/** CONTRACT §11 put together: the hub, the refresher (and its Redis coordination), the routes, the metrics. */
export function pushFeatures(app: FastifyInstance, deps: PushDeps): PushFeatures {
  const { config, cache, service, upstream, metrics, redis, shared } = deps
  const intervalMs = config.push.refreshIntervalMs
  const hub = new WatchHub({
    cache,
    rules: { ttlSeconds: config.cache.ttlSeconds, urlExpiryMarginSeconds: config.cache.urlExpiryMarginSeconds, pollCacheMs: config.cache.pollCacheMs },
    intervalMs,
    watchIdleMs: config.push.watchIdleSeconds * 1000,
    shared,
    sawTerminal: (body) => service.sawTerminal(body)
  })
  const subscribers = new Subscribers(config.push.maxSubscribers, deps.heartbeatMs)
  const counters = new PushMetrics(metrics.registry, () => subscribers.count)
  const log = app.log.child({ module: 'push' })
  const relay = redis === undefined ? undefined : new RedisRelay(redis, { hub, namespace: config.upstream.keyFingerprint, intervalMs, log })

  const refresher = new Refresher({
    hub,
    upstream,
    intervalMs,
    log,
    count: (outcome) => counters.refreshCalls.inc({ outcome }),
    confirm: async (id) => {
      try {
        const served = await service.fetch(id)
        if (served.kind === 'task' && hub.apply(id, served.body, Date.now())) relay?.changed(id, served.body)
      } catch (err) {
        if (err instanceof TaskNotFoundError) {
          hub.gone(id)
          relay?.gone(id)
        }
      }
    },
    ...(relay === undefined ? {} : { leader: () => relay.lead(), relay })
  })
  refresher.start()
  relay?.start()

  app.addHook('preClose', (done) => {
    subscribers.closeAll()
    done()
  })
  app.addHook('onClose', async () => {
    await refresher.stop()
    await relay?.stop()
  })

  const secret = notifySecret(config.upstream.apiKey)
  return {
    fetched: (id, now) => hub.fetched(id, now),
    routes: async (mj) => {
      await mj.register(taskEventsRoutes, { cache, service, hub, subscribers, table: deps.clientKeys, access: deps.access, upstream })
    },
    callbacks: async (root) => {
      if (config.publicUrl === '') return
      await root.register(notifyCallbackRoutes, {
        secret,
        count: (outcome) => counters.notifyCallbacks.inc({ outcome }),
        // A callback is a hint, never a state: anyone who learnt the callback URL (it travels in every submit, and
        // a relay may show it in task bodies) could otherwise post any state for any watched task. The task is read
        // from the upstream at once instead.
        accept: async (id) => {
          const now = Date.now()
          if (!hub.watched(id, now) && !(await relay?.watched(id))) return false
          // watched here until that refresh is in (a task only another replica's subscriber watches)
          hub.watchUntil(id, now + intervalMs, now)
          refresher.soon(id)
          return true
        }
      })
    }
  }
}
