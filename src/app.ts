import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import pino from 'pino'
import { stdoutLog, type LogStream } from './logging/log-stream.js'
import type { Config } from './config.js'
import { installErrorHandler } from './http/errors.js'
import { GatewayMetrics } from './metrics/gateway-metrics.js'
import { etagOf, TaskCache, type Clock } from './cache/task-cache.js'
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
import { unroutedRoutes } from './routes/unrouted.js'
import { withModePrefixes } from './routes/mode-prefixes.js'
import { MAX_HEADER_BYTES } from './http/request-checks.js'
import { LIST_PATH, TaskListService } from './tasks/list-service.js'
import { IMAGE_SEED_ROUTE } from './routes/passthrough-table.js'
import { FETCH_ROUTE } from './tasks/task-id.js'
import { HitLane } from './http/hit-lane.js'
import { GatewayServer, defaultTimeouts, serverSettings, type Timeouts } from './http/server.js'
import { CorsPolicy } from './http/cors-policy.js'
import { AccessLog, requestIds } from './logging/access-log.js'
import { clientIp, trustFunction } from './http/client-address.js'
import { Ownership, type OwnerRecords } from './clients/ownership.js'
import { SubmitQuota, type QuotaStore } from './clients/submit-quota.js'
import { EmbeddedStore } from './storage/embedded-store.js'
import { RedisOwnerRecords } from './redis/owner-records.js'
import clientUsagePlugin from './plugins/client-usage.js'
import fairnessPlugin from './plugins/fairness.js'
import { ClientInflight, SubmitBytes } from './clients/client-inflight.js'
import { createImageArchive } from './images/image-archive.js'
import { IMAGE_FAILURES } from './images/cdn-fetch.js'
import { ImageService } from './images/image-service.js'
import { imageRoutes } from './routes/images.js'
import { pushFeatures } from './push/wiring.js'

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

/** the routes whose denials are counted from the start (submits naming a taskId are counted under their own path) */
const OWNERSHIP_ROUTES = [FETCH_ROUTE, IMAGE_SEED_ROUTE, LIST_PATH]

/**
 * CONTRACT §9's records: in Redis with REDIS_URL (shared by replicas), else in the embedded store under DATA_DIR
 * (opened only when ownership or a quota needs it; a DATA_DIR that cannot be written stops start-up, ConfigError).
 */
function tenancy(app: FastifyInstance, config: Config, metrics: GatewayMetrics, redis: RedisConnection | undefined) {
  const needed = config.ownership.enabled || config.fairness.submitQuotaPerDay > 0
  const embedded = needed && redis === undefined ? new EmbeddedStore(config.dataDir, config.upstream.keyFingerprint) : undefined
  // undefined only when nothing needs it: Ownership reads its store only when enabled, and no quota is built then
  const store = (redis !== undefined ? new RedisOwnerRecords(redis, config.upstream.keyFingerprint) : embedded) as OwnerRecords & QuotaStore
  const storeName = redis === undefined ? 'embedded' : 'redis'
  const onStoreError = (err: unknown): void => {
    metrics.tenancyStoreErrors.inc({ store: storeName })
    // the code only: a Redis error carries its command's arguments
    app.log.warn({ store: storeName, code: (err as { code?: unknown }).code }, 'tenancy store failed: ownership denies until it is back')
  }
  const ownership = new Ownership({
    enabled: config.ownership.enabled,
    ownerlessVisible: config.ownership.ownerless === 'visible',
    ttlMs: config.ownership.ttlDays * 86_400_000,
    store,
    onDenied: (route) => metrics.ownershipDenied.inc({ route }),
    onStoreError
  })
  // series start at zero (CONTRACT §7) for the routes that check ownership and the store in use
  if (needed) metrics.tenancyStoreErrors.inc({ store: storeName }, 0)
  if (config.ownership.enabled) for (const route of OWNERSHIP_ROUTES) metrics.ownershipDenied.inc({ route }, 0)
  const perDay = config.fairness.submitQuotaPerDay
  const quota = perDay > 0 ? new SubmitQuota(perDay, store, onStoreError) : undefined
  return { ownership, quota, closeStore: () => embedded?.close() }
}

/** Builds the gateway; never listens (main.ts does). */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<FastifyInstance> {
  const trust = trustFunction(config.trustProxy)
  const nextId = requestIds()
  const cors = new CorsPolicy(config.corsOrigins)
  const clientKeys = new ClientKeyTable(config)
  const settings = serverSettings({ ...defaultTimeouts(config.upstream.timeoutMs), ...overrides.timeouts }, cors, (h) => clientKeys.identify(h).authorized)
  const server = new GatewayServer(settings)
  const ownStream = overrides.logStream === undefined ? stdoutLog() : undefined
  const logStream: pino.DestinationStream = overrides.logStream ?? (ownStream as LogStream)
  const app = Fastify({
    logger: loggerOptions(config, logStream),
    trustProxy: trust,
    genReqId: nextId,
    serverFactory: server.factory,
    // Room for any id a request head can hold, so the schema answers it (400) with the pattern in its message
    // (an id the router found too long would go to the /mj/* catch-all instead: routes/unrouted.ts).
    routerOptions: { maxParamLength: MAX_HEADER_BYTES },
    // the hardening hook answers requests that arrive while closing (503 in the contract's shape)
    return503OnClosing: false,
    // one access line per request (plugins/request-log.ts) instead of Fastify's two, and request.log built lazily
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    ...settings
  })
  installErrorHandler(app)
  // CORS first of all, at the root: every answer after it, refusals and 404s included, carries the headers
  // (docs/compatibility.md), and a preflight is answered before any check
  if (cors.enabled) await app.register(corsPlugin, { policy: cors })
  await app.register(hardeningPlugin)

  app.decorate('reloadClientKeys', () => reloadClientKeys(clientKeys, app.log))

  const metrics = new GatewayMetrics({
    cache: { entries: () => cache.entries, bytes: () => cache.bytes },
    redis: config.redisUrl !== '',
    logLinesDropped: () => ownStream?.dropped ?? 0,
    images: { outcomes: IMAGE_FAILURES, storeBytes: () => images.store.bytes }
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
  const { ownership, quota, closeStore } = tenancy(app, config, metrics, redis)
  const inflight = new ClientInflight(config.fairness.clientMaxInflight)
  const submitBytes = new SubmitBytes(config.fairness.submitInflightMaxBytes)
  const service = new TaskService(config.cache, cache, upstream, metrics, shared)
  const list = new TaskListService(config.cache, cache, upstream, metrics, shared)
  // docs/images.md: finished tasks' images are archived as the gateway first sees them; IMAGE_REWRITE presents them
  const images = createImageArchive(config, metrics, app.log.child({ module: 'images' }))
  const rewriter = images.rewriter
  service.sawTerminal = (body) => images.archiver.sawTask(body)
  list.sawTerminal = service.sawTerminal
  if (rewriter !== undefined) list.present = (body, now) => rewriter.present(body, etagOf(body), now).body
  const imageService = new ImageService(images.store, images.archiver, service, metrics, config.upstream.timeoutMs)
  // every events read asks ownership (docs/tenancy.md §2), as /fetch does
  const push = pushFeatures(app, {
    ...{ config, cache, service, upstream, metrics, redis, shared, clientKeys, heartbeatMs: overrides.heartbeatMs },
    access: (client, id, route) => ownership.assertReadable(client, id, route)
  })
  const httpMetrics = overrides.httpMetrics ?? true
  const accessLog = INFO_OR_BELOW.has(app.log.level) ? new AccessLog(logStream, trust, nextId) : undefined
  const rateLimit = config.rateLimitPerMinute > 0 ? new RateLimitCounter(rateLimitStore(config, redis), config.rateLimitPerMinute) : undefined
  // HIT_LANE: every request meets the hit lane (src/http/hit-lane.ts) first, and what it does not answer goes to Fastify
  const lane =
    config.hitLane === 'off'
      ? undefined
      : new HitLane({ cache, metrics, httpMetrics, clients: clientKeys, rateLimit, cors, clientIp: (req) => clientIp(req, trust), accessLog, rewriter, ownership, inflight, fetched: push.fetched }, server.fastify)
  server.front(lane)
  app.decorate('hitLane', lane)
  app.addHook('onClose', async () => {
    await upstream.close()
    await images.close()
    await redis?.close()
    closeStore()
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
  // Hook order inside: shedding, rate limit (onRequest), client token (preParsing); CORS runs before them all (root).
  await app.register(async (mj) => {
    if (config.eventLoopMaxDelayMs > 0) {
      await mj.register(sheddingPlugin, { maxEventLoopDelayMs: config.eventLoopMaxDelayMs })
      if (lane !== undefined) lane.underPressure = () => mj.isUnderPressure()
    }
    await mj.register(authPlugin, { table: clientKeys })
    if (rateLimit !== undefined) await mj.register(rateLimitPlugin, { table: clientKeys, counter: rateLimit })
    await mj.register(clientUsagePlugin, { table: clientKeys, metrics })
    await mj.register(fairnessPlugin, { table: clientKeys, inflight, submitBytes })
    // the routes below, at /mj/... and again under /mj-fast, /mj-relax and /mj-turbo (routes/mode-prefixes.ts)
    await withModePrefixes(mj, async (mj) => {
      await mj.register(taskFetchRoutes, { cache, service, metrics, rewriter, ownership, clients: clientKeys, fetched: push.fetched })
      await mj.register(push.routes)
      await mj.register(imageRoutes, { images: imageService, signer: images.signer, clients: clientKeys, ownership })
      await mj.register(passthroughRoutes, { config, upstream, list, ownership, clients: clientKeys, metrics, quota })
      await mj.register(unroutedRoutes)
    })
  })
  // the upstream's callbacks (PUBLIC_URL): outside /mj, it presents no client token
  await app.register(push.callbacks)
  return app
}
