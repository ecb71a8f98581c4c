import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import pino from 'pino'
import { stdoutLog, type LogStream } from './logging/log-stream.js'
import type { Config } from './config.js'
import { installErrorHandler } from './http/errors.js'
import { GatewayMetrics } from './metrics/gateway-metrics.js'
import { TaskCache, type Clock } from './cache/task-cache.js'
import { TaskService } from './tasks/fetch-service.js'
import { UpstreamClient } from './upstream/client.js'
import { ClientKeyTable } from './clients/client-keys.js'
import { reloadClientKeys } from './clients/reload.js'
import { RedisConnection } from './redis/connection.js'
import { RedisSharedTier } from './redis/shared-tier.js'
import { SyncedRateLimitStore } from './rate-limit/redis-store.js'
import { MemoryStore } from './rate-limit/memory-store.js'
import { RATE_LIMIT_WINDOW_MS, RateLimitCounter, type Store } from './rate-limit/counter.js'
import httpMetricsPlugin from './plugins/http-metrics.js'
import hardeningPlugin from './plugins/hardening.js'
import authPlugin from './plugins/client-auth.js'
import corsPlugin from './plugins/cors.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import sheddingPlugin from './plugins/shedding.js'
import requestLog from './plugins/request-log.js'
import { lazyChildLogger } from './logging/request-logger.js'
import { healthRoutes } from './routes/health.js'
import { metricsRoutes } from './routes/metrics.js'
import { taskFetchRoutes } from './routes/task-fetch.js'
import { passthroughRoutes } from './routes/passthrough.js'
import { TaskListService } from './tasks/list-service.js'
import { HitLane } from './http/hit-lane.js'
import { GatewayServer, defaultTimeouts, serverSettings, type Timeouts } from './http/server.js'
import { CorsPolicy } from './http/cors.js'
import { AccessLog, requestIds } from './logging/access-log.js'
import { clientIp, trustFunction } from './http/client-address.js'
import { pushFeatures } from './push/wiring.js'
import { EVERYONE } from './routes/task-events.js'

export interface AppOverrides {
  /** where pino writes (tests capture logs to prove no secret is in them); default stdout */
  logStream?: NodeJS.WritableStream
  /** slow-client time limits (tests shorten them); default defaultTimeouts() */
  timeouts?: Partial<Timeouts>
  /** false builds the app without the per-request http metrics hook; only the benchmark's "metrics off" candidate uses it */
  httpMetrics?: boolean
  /** the memory cache's clock (tests move it instead of sleeping); default Date.now */
  clock?: Clock
  /** how often events streams get a comment line (tests shorten it); default src/push/subscribers.ts HEARTBEAT_MS */
  heartbeatMs?: number
}

export const REDACTED_HEADERS = ['authorization', 'mj-api-secret', 'cookie', 'set-cookie', 'x-api-key', 'proxy-authorization']

function loggerOptions(config: Config, stream: pino.DestinationStream): FastifyServerOptions['logger'] {
  const paths = REDACTED_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `headers["${h}"]`, `res.headers["${h}"]`])
  return {
    level: config.logLevel,
    redact: { paths, censor: '[redacted]' },
    // The client's name (never its token) wherever a reply is logged.
    serializers: { res: (reply) => ({ statusCode: reply.statusCode, client: reply.request?.mjClient?.name }) },
    stream
  }
}

const INFO_OR_BELOW = new Set(['info', 'debug', 'trace'])

/** How long a replica waits for another replica's upstream call for the same task before calling itself. */
const LOCK_WAIT_MS = 3000

function connectRedis(app: FastifyInstance, config: Config, metrics: GatewayMetrics): RedisConnection {
  return new RedisConnection({
    url: config.redisUrl,
    log: app.log.child({ module: 'redis' }),
    onState: (up) => metrics.redisUp?.set(up ? 1 : 0)
  })
}

/** RATE_LIMIT_PER_MINUTE counts in this process's memory, or with REDIS_URL also reported to Redis, shared by every replica. */
function rateLimitStore(config: Config, redis: RedisConnection | undefined): Store {
  if (redis === undefined) return new MemoryStore()
  return new SyncedRateLimitStore(redis, { namespace: config.upstream.keyFingerprint, max: config.rateLimitPerMinute, windowMs: RATE_LIMIT_WINDOW_MS })
}

/** Builds the gateway; never listens (main.ts does). */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<FastifyInstance> {
  const trust = trustFunction(config.trustProxy)
  const nextId = requestIds()
  const settings = serverSettings({ ...defaultTimeouts(config.upstream.timeoutMs), ...overrides.timeouts })
  const server = new GatewayServer(settings)
  const ownStream = overrides.logStream === undefined ? stdoutLog() : undefined
  const logStream: pino.DestinationStream = overrides.logStream ?? (ownStream as LogStream)
  const app = Fastify({
    logger: loggerOptions(config, logStream),
    trustProxy: trust,
    genReqId: nextId,
    serverFactory: server.factory,
    // Room for ids well past the pattern's 64, so the schema answers them (400) with the pattern in its message.
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    // one access line per request (plugins/request-log.ts) instead of Fastify's two, and request.log built lazily
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    ...settings
  })
  installErrorHandler(app)
  await app.register(hardeningPlugin)

  const clientKeys = new ClientKeyTable(config)
  app.decorate('reloadClientKeys', () => reloadClientKeys(clientKeys, app.log))

  const metrics = new GatewayMetrics({
    cache: { entries: () => cache.entries, bytes: () => cache.bytes },
    redis: config.redisUrl !== '',
    logLinesDropped: () => ownStream?.dropped ?? 0
  })
  const cache: TaskCache = new TaskCache({
    maxBytes: config.cache.maxBytes,
    staleIfErrorMs: config.cache.staleIfErrorSeconds * 1000,
    onEvict: () => metrics.cacheEvictions.inc(),
    clock: overrides.clock
  })
  const upstream = new UpstreamClient(config.upstream, metrics)
  const redis = config.redisUrl === '' ? undefined : connectRedis(app, config, metrics)
  const shared =
    redis === undefined
      ? undefined
      : new RedisSharedTier(redis, {
          namespace: config.upstream.keyFingerprint,
          lockTtlMs: config.upstream.timeoutMs + 1000,
          lockWaitMs: Math.min(LOCK_WAIT_MS, config.upstream.timeoutMs),
          rules: config.cache,
          onRejected: (reason) => metrics.redisRejected?.inc({ reason }),
          memory: () => cache.terminal(cache.now()),
          now: cache.now
        })
  const service = new TaskService(config.cache, cache, upstream, metrics, shared)
  const list = new TaskListService(config.cache, cache, upstream, metrics, shared)
  // task ownership (§9) goes here when it lands: every events read asks this one function
  const push = pushFeatures(app, { config, cache, service, upstream, metrics, redis, shared, clientKeys, heartbeatMs: overrides.heartbeatMs, access: EVERYONE })
  const httpMetrics = overrides.httpMetrics ?? true
  const accessLog = INFO_OR_BELOW.has(app.log.level) ? new AccessLog(logStream, trust, nextId) : undefined
  const rateLimit = config.rateLimitPerMinute > 0 ? new RateLimitCounter(rateLimitStore(config, redis), config.rateLimitPerMinute) : undefined
  const cors = new CorsPolicy(config.corsOrigins)
  // HIT_LANE: every request meets the hit lane (src/http/hit-lane.ts) first, and what it does not answer goes to Fastify
  const lane =
    config.hitLane === 'off'
      ? undefined
      : new HitLane({ cache, metrics, httpMetrics, clients: clientKeys, rateLimit, cors, clientIp: (req) => clientIp(req, trust), accessLog, fetched: push.fetched }, server.fastify)
  server.front(lane)
  app.decorate('hitLane', lane)
  app.addHook('onClose', async () => {
    await upstream.close()
    await redis?.close()
    ownStream?.flush()
  })
  // docs/operations.md §3: a request in flight at close must not leave its keep-alive socket open afterwards,
  // or server.close() waits for the client's idle timeout and the graceful exit is killed by its delay.
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    if (lane !== undefined) lane.closing = true
    done()
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })

  await app.register(requestLog, { accessLog })
  if (httpMetrics) await app.register(httpMetricsPlugin, { metrics })
  await app.register(metricsRoutes, { metrics, token: config.metricsToken })
  await app.register(healthRoutes, {
    redisState: () => (redis === undefined ? 'off' : redis.up ? 'up' : 'down'),
    keyState: () => upstream.keyHealth.state()
  })
  // Every /mj route lives in this one scope, so access control added here covers all of them and nothing else.
  // Hook order inside: CORS (answers preflights), shedding, rate limit (onRequest), client token (preParsing).
  await app.register(async (mj) => {
    if (cors.enabled) await mj.register(corsPlugin, { policy: cors })
    if (config.eventLoopMaxDelayMs > 0) {
      await mj.register(sheddingPlugin, { maxEventLoopDelayMs: config.eventLoopMaxDelayMs })
      if (lane !== undefined) lane.underPressure = () => mj.isUnderPressure()
    }
    await mj.register(authPlugin, { table: clientKeys })
    if (rateLimit !== undefined) await mj.register(rateLimitPlugin, { table: clientKeys, counter: rateLimit })
    await mj.register(taskFetchRoutes, { cache, service, metrics, fetched: push.fetched })
    await mj.register(push.routes)
    await mj.register(passthroughRoutes, { config, upstream, list })
  })
  // the upstream's callbacks (PUBLIC_URL): outside /mj, it presents no client token
  await app.register(push.callbacks)
  return app
}
