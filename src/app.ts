import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { installErrorHandler } from './errors.js'
import { GatewayMetrics } from './metrics.js'
import { TaskCache } from './cache/task-cache.js'
import { TaskService } from './task-service.js'
import { UpstreamClient } from './upstream/client.js'
import { RedisConnection } from './redis/connection.js'
import { RedisSharedTier } from './redis/shared-tier.js'
import metricsPlugin from './plugins/metrics.js'
import { healthRoutes } from './routes/health.js'
import { taskFetchRoutes } from './routes/task-fetch.js'

export interface AppOverrides {
  /** where pino writes (tests capture logs to prove no secret is in them); default stdout */
  logStream?: NodeJS.WritableStream
}

export const REDACTED_HEADERS = ['authorization', 'mj-api-secret', 'cookie', 'set-cookie', 'x-api-key', 'proxy-authorization']

function loggerOptions(config: Config, overrides: AppOverrides): FastifyServerOptions['logger'] {
  const paths = REDACTED_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `headers["${h}"]`, `res.headers["${h}"]`])
  return {
    level: config.logLevel,
    redact: { paths, censor: '[redacted]' },
    ...(overrides.logStream === undefined ? {} : { stream: overrides.logStream })
  }
}

function trustProxyOption(v: Config['trustProxy']): boolean | string[] | ((addr: string, hop: number) => boolean) {
  if (typeof v === 'number') return (_addr, hop) => hop < v
  if (typeof v === 'string') return v.split(',').map((s) => s.trim())
  return v
}

/** How long a replica waits for another replica's upstream call for the same task before calling itself. */
const LOCK_WAIT_MS = 3000

function connectRedis(app: FastifyInstance, config: Config, metrics: GatewayMetrics): RedisConnection {
  return new RedisConnection({
    url: config.redisUrl,
    log: app.log.child({ module: 'redis' }),
    onState: (up) => metrics.redisUp?.set(up ? 1 : 0)
  })
}

/** Builds the gateway; never listens (main.ts does). */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config, overrides),
    trustProxy: trustProxyOption(config.trustProxy),
    // Long ids must reach the schema (400), not fall out of the router (404).
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true
  })
  installErrorHandler(app)

  const metrics = new GatewayMetrics({
    cache: { entries: () => cache.entries, bytes: () => cache.bytes },
    redis: config.redisUrl !== ''
  })
  const cache: TaskCache = new TaskCache({
    maxBytes: config.cache.maxBytes,
    staleIfErrorMs: config.cache.staleIfErrorSeconds * 1000,
    onEvict: () => metrics.cacheEvictions.inc()
  })
  const upstream = new UpstreamClient(config.upstream, metrics)
  const redis = config.redisUrl === '' ? undefined : connectRedis(app, config, metrics)
  const shared =
    redis === undefined
      ? undefined
      : new RedisSharedTier(redis, {
          namespace: config.upstream.keyFingerprint,
          lockTtlMs: config.upstream.timeoutMs + 1000,
          lockWaitMs: Math.min(LOCK_WAIT_MS, config.upstream.timeoutMs)
        })
  const service = new TaskService(config.cache, cache, upstream, metrics, shared)
  app.addHook('onClose', async () => {
    await upstream.close()
    await redis?.close()
  })

  await app.register(metricsPlugin, { metrics, token: config.metricsToken })
  await app.register(healthRoutes, { redisState: () => (redis === undefined ? 'off' : redis.up ? 'up' : 'down') })
  // Every /mj route lives in this one scope, so access control added here covers all of them and nothing else.
  // With REDIS_URL, the rate limiter's `store` is sharedRateLimitStore(redis, config.upstream.keyFingerprint).
  await app.register(async (mj) => {
    await mj.register(taskFetchRoutes, { cache, service, metrics })
  })
  return app
}
