import type { FastifyInstance } from 'fastify'
import { identitiesConfigured, type Config } from '../config.js'
import type { UpstreamClient } from '../upstream/client.js'
import type { TaskListService } from '../tasks/list-service.js'
import { submitRoutes } from './submit.js'
import { imageSeedRoutes } from './image-seed.js'
import { listByConditionRoutes } from './list-by-condition.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import type { SubmitQuota } from '../clients/submit-quota.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { scanJsonObject } from '../http/json-members.js'
import { scanError } from './json-body.js'

export { SUBMIT_KINDS } from './submit.js'
export { MAX_LIST_IDS } from './list-by-condition.js'

/** `auto`: on exactly when client tokens guard the routes. */
export function passthroughEnabled(config: Pick<Config, 'passthrough' | 'clientKeys' | 'clientKeysFile' | 'jwt'>): boolean {
  return config.passthrough === 'on' || (config.passthrough === 'auto' && identitiesConfigured(config))
}

export const OPEN_PASSTHROUGH_WARNING =
  'PASSTHROUGH=on without client tokens: anyone who can reach this gateway can submit tasks and spend the upstream key. ' +
  'Set CLIENT_KEYS or CLIENT_KEYS_FILE, or PASSTHROUGH=auto'

interface Deps {
  config: Config
  upstream: UpstreamClient
  list: TaskListService
  ownership: Ownership
  clients: ClientKeyTable
  metrics: GatewayMetrics
  /** SUBMIT_QUOTA_PER_DAY; undefined when off */
  quota: SubmitQuota | undefined
}

/**
 * PASSTHROUGH: submit, image-seed and list-by-condition (docs/http-api.md §3), one file each; which paths
 * is config.passthroughRoutes (PASSTHROUGH_ROUTES, routes/passthrough-table.ts). Registered
 * inside the /mj scope, so the client-token and rate-limit hooks there guard them. Forwarded with UpstreamClient
 * rather than @fastify/http-proxy: the body has to be parsed anyway (notifyHook), and the client then brings the key
 * injection, the header allowlist (no client header reaches upstream at all), the time budget, the no-retry rule
 * for submits, the error mapping of docs/errors.md §3 and the per-attempt metrics that a proxy would need re-plumbing for.
 */
export async function passthroughRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  const { config, upstream, list, ownership, clients } = deps
  if (!passthroughEnabled(config)) return
  if (!identitiesConfigured(config)) app.log.warn(OPEN_PASSTHROUGH_WARNING)
  // every JSON body here is checked (depth included, docs/tenancy.md §5) before it is parsed; submits keep the bytes
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    const scanned = scanJsonObject(body as Buffer)
    if (!scanned.ok) done(scanError(scanned.kind, scanned.reason), undefined)
    else done(null, JSON.parse((body as Buffer).toString('utf8')))
  })
  await app.register(submitRoutes, deps)
  await app.register(imageSeedRoutes, { config, upstream, ownership, clients })
  await app.register(listByConditionRoutes, { config, list, ownership, clients })
}
