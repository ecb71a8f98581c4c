import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { installErrorHandler } from './errors.js'
import { GatewayMetrics } from './metrics.js'
import { TaskCache } from './cache/task-cache.js'
import { TaskService } from './task-service.js'
import { UpstreamClient } from './upstream/client.js'
import metricsPlugin from './plugins/metrics.js'
import requestLog from './plugins/request-log.js'
import { lazyChildLogger } from './request-logger.js'
import { healthRoutes } from './routes/health.js'
import { taskFetchRoutes } from './routes/task-fetch.js'

export interface AppOverrides {
  /** where pino writes (tests capture logs to prove no secret is in them); default stdout */
  logStream?: NodeJS.WritableStream
  /** false builds the app without the per-request http metrics hook; only the benchmark's "metrics off" candidate uses it */
  httpMetrics?: boolean
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

/** Builds the gateway; never listens (main.ts does). */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config, overrides),
    trustProxy: trustProxyOption(config.trustProxy),
    // Long ids must reach the schema (400), not fall out of the router (404).
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    // one access line per request (plugins/request-log.ts) instead of Fastify's two, and request.log built lazily
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger
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
  const service = new TaskService(config.cache, cache, upstream, metrics)
  app.addHook('onClose', async () => {
    await upstream.close()
  })

  await app.register(requestLog)
  await app.register(metricsPlugin, { metrics, token: config.metricsToken, httpHook: overrides.httpMetrics ?? true })
  await app.register(healthRoutes, { redisState: () => 'off' })
  // Every /mj route lives in this one scope, so access control added here covers all of them and nothing else.
  await app.register(async (mj) => {
    await mj.register(taskFetchRoutes, { cache, service, metrics })
  })
  return app
}
