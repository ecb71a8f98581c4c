import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import type { UpstreamClient } from '../upstream/client.js'
import type { TaskListService } from '../tasks/list-service.js'
import { submitRoutes } from './submit.js'
import { imageSeedRoutes } from './image-seed.js'
import { listByConditionRoutes } from './list-by-condition.js'

export { SUBMIT_KINDS } from './submit.js'
export { MAX_LIST_IDS } from './list-by-condition.js'

/** `auto`: on exactly when client tokens guard the routes. */
export function passthroughEnabled(config: Pick<Config, 'passthrough' | 'clientKeys'>): boolean {
  return config.passthrough === 'on' || (config.passthrough === 'auto' && config.clientKeys.length > 0)
}

export const OPEN_PASSTHROUGH_WARNING =
  'PASSTHROUGH=on without client tokens: anyone who can reach this gateway can submit tasks and spend the upstream key. ' +
  'Set CLIENT_KEYS or CLIENT_KEYS_FILE, or PASSTHROUGH=auto'

interface Deps {
  config: Config
  upstream: UpstreamClient
  list: TaskListService
}

/**
 * PASSTHROUGH: submit, image-seed and list-by-condition (docs/http-api.md §3), one file each; which paths
 * is config.passthroughRoutes (PASSTHROUGH_ROUTES, routes/passthrough-table.ts). Registered
 * inside the /mj scope, so the client-token and rate-limit hooks there guard them. Forwarded with UpstreamClient
 * rather than @fastify/http-proxy: the body has to be parsed anyway (notifyHook), and the client then brings the key
 * injection, the header allowlist (no client header reaches upstream at all), the time budget, the no-retry rule
 * for submits, the error mapping of docs/errors.md §3 and the per-attempt metrics that a proxy would need re-plumbing for.
 */
export async function passthroughRoutes(app: FastifyInstance, { config, upstream, list }: Deps): Promise<void> {
  if (!passthroughEnabled(config)) return
  if (config.clientKeys.length === 0) app.log.warn(OPEN_PASSTHROUGH_WARNING)
  await app.register(submitRoutes, { config, upstream })
  await app.register(imageSeedRoutes, { config, upstream })
  await app.register(listByConditionRoutes, { config, list })
}
