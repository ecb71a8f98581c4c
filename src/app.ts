import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { installErrorHandler } from './errors.js'
import { GatewayMetrics } from './metrics.js'
import { TaskCache } from './cache/task-cache.js'
import { TaskService } from './task-service.js'
import { UpstreamClient } from './upstream/client.js'
import { ClientKeyTable } from './auth.js'
import { RedisConnection } from './redis/connection.js'
import { RedisSharedTier } from './redis/shared-tier.js'
import { sharedRateLimitStore } from './redis/rate-limit-store.js'
import metricsPlugin from './plugins/metrics.js'
import hardeningPlugin, { defaultTimeouts, hardeningServerOptions, type Timeouts } from './plugins/hardening.js'
import authPlugin, { reloadClientKeys } from './plugins/auth.js'
import corsPlugin from './plugins/cors.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import sheddingPlugin from './plugins/shedding.js'
import requestLog from './plugins/request-log.js'
import { lazyChildLogger } from './request-logger.js'
import { healthRoutes } from './routes/health.js'
import { taskFetchRoutes } from './routes/task-fetch.js'
import { passthroughRoutes } from './routes/passthrough.js'
import { TaskListService } from './task-list.js'

export interface AppOverrides {
  /** where pino writes (tests capture logs to prove no secret is in them); default stdout */
  logStream?: NodeJS.WritableStream
  /** slow-client time limits (tests shorten them); default defaultTimeouts() */
  timeouts?: Partial<Timeouts>
  /** false builds the app without the per-request http metrics hook; only the benchmark's "metrics off" candidate uses it */
  httpMetrics?: boolean
}

export const REDACTED_HEADERS = ['authorization', 'mj-api-secret', 'cookie', 'set-cookie', 'x-api-key', 'proxy-authorization']

function loggerOptions(config: Config, overrides: AppOverrides): FastifyServerOptions['logger'] {
  const paths = REDACTED_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `headers["${h}"]`, `res.headers["${h}"]`])
  return {
    level: config.logLevel,
    redact: { paths, censor: '[redacted]' },
    // The client's name (never its token) on every "request completed" line.
    serializers: { res: (reply) => ({ statusCode: reply.statusCode, client: reply.request?.mjClient?.name }) },
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
    // Room for ids well past the pattern's 64, so the schema answers them (400) with the pattern in its message.
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    // one access line per request (plugins/request-log.ts) instead of Fastify's two, and request.log built lazily
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    ...hardeningServerOptions({ ...defaultTimeouts(config.upstream.timeoutMs), ...overrides.timeouts })
  })
  installErrorHandler(app)
  await app.register(hardeningPlugin)

  const clientKeys = new ClientKeyTable(config)
  app.decorate('reloadClientKeys', () => reloadClientKeys(clientKeys, app.log))

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
  const list = new TaskListService(config.cache, cache, upstream, metrics, shared)
  app.addHook('onClose', async () => {
    await upstream.close()
    await redis?.close()
  })
  // CONTRACT §8: a request in flight at close must not leave its keep-alive socket open afterwards,
  // or server.close() waits for the client's idle timeout and the graceful exit is killed by its delay.
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })

  await app.register(requestLog)
  await app.register(metricsPlugin, { metrics, token: config.metricsToken, httpHook: overrides.httpMetrics ?? true })
  await app.register(healthRoutes, { redisState: () => (redis === undefined ? 'off' : redis.up ? 'up' : 'down') })
  // Every /mj route lives in this one scope, so access control added here covers all of them and nothing else.
  // Hook order inside: CORS (answers preflights), shedding, rate limit (onRequest), client token (preParsing).
  await app.register(async (mj) => {
    if (config.corsOrigins.length > 0) await mj.register(corsPlugin, { origins: config.corsOrigins })
    if (config.eventLoopMaxDelayMs > 0) await mj.register(sheddingPlugin, { maxEventLoopDelayMs: config.eventLoopMaxDelayMs })
    await mj.register(authPlugin, { table: clientKeys })
    if (config.rateLimitPerMinute > 0) {
      const store = redis === undefined ? undefined : sharedRateLimitStore(redis, config.upstream.keyFingerprint)
      await mj.register(rateLimitPlugin, { table: clientKeys, perMinute: config.rateLimitPerMinute, ...(store && { store }) })
    }
    await mj.register(taskFetchRoutes, { cache, service, metrics })
    await mj.register(passthroughRoutes, { config, upstream, list })
  })
  return app
}
