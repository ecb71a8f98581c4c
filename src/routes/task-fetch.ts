import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TaskCache } from '../cache/task-cache.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { hitCacheControl } from '../cache/cache-control.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import type { TaskService } from '../tasks/fetch-service.js'
import { FETCH_ROUTE, taskIdParams } from '../tasks/task-id.js'
import { sendAnswer } from './send-answer.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'
import type { TaskRewriter } from '../images/task-rewrite.js'

interface Deps {
  cache: TaskCache
  service: TaskService
  metrics: GatewayMetrics
  ownership: Ownership
  clients: ClientKeyTable
  /** IMAGE_REWRITE=on: the body clients get (the hit lane calls the same one) */
  rewriter?: TaskRewriter | undefined
  /** docs/push.md: a live task was fetched, so the refresher watches it (the hit lane calls the same one) */
  fetched: (id: string, now: number) => void
}

type FetchRequest = FastifyRequest<{ Params: { id: string } }>

/** `If-None-Match` holds this etag (a list, `*` and weak forms included). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  if (header === etag || header === '*') return true
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)
}

function send(
  request: FetchRequest,
  reply: FastifyReply,
  stored: { body: Buffer; etag: string },
  cacheControl: string,
  cache: string,
  rewriter: TaskRewriter | undefined
): FastifyReply {
  const { body, etag } = rewriter === undefined ? stored : rewriter.present(stored.body, stored.etag, Date.now())
  reply.header('x-cache', cache).header('etag', etag).header('cache-control', cacheControl)
  if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send()
  return reply.header('content-type', JSON_CONTENT_TYPE).send(body)
}

/**
 * GET /mj/task/{id}/fetch on the Fastify path. A fresh hit is normally answered by the hit lane (src/http/hit-lane.ts)
 * before it gets here; this answers it the same way when the lane declines or is off.
 */
export async function taskFetchRoutes(app: FastifyInstance, { cache, service, metrics, rewriter, ownership, clients, fetched }: Deps): Promise<void> {
  // '' or a mode prefix (routes/mode-prefixes.ts): the cache is shared, a miss is asked upstream under the prefix
  const mode = app.prefix
  const miss = async (request: FetchRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const served = await service.fetch(request.params.id, mode, clientOf(request, clients).name)
    if (served.kind === 'task' && served.cacheControl === 'no-cache') fetched(request.params.id, Date.now())
    if (served.kind === 'task') return send(request, reply, served, served.cacheControl, served.cache, rewriter)
    return sendAnswer(reply, served.answer)
  }

  // Not async: a hit answers synchronously, without a promise per request; only a miss returns one.
  const serve = (request: FetchRequest, reply: FastifyReply): Promise<FastifyReply> | undefined => {
    const now = cache.now()
    const hit = cache.fresh(request.params.id, now)
    if (hit === undefined) return miss(request, reply)
    metrics.lookup('hit')
    if (!hit.terminal) fetched(request.params.id, now)
    send(request, reply, hit, hitCacheControl(hit, now), 'HIT', rewriter)
    return undefined
  }

  // docs/tenancy.md: another client's task is an unknown id, decided before the cache or upstream is looked at; the
  // hit lane's serve() calls the same Ownership.canRead()
  app.get(FETCH_ROUTE, { schema: { params: taskIdParams } }, (request: FetchRequest, reply) => {
    const allowed = ownership.assertReadable(clientOf(request, clients), request.params.id, FETCH_ROUTE)
    if (allowed === undefined) return serve(request, reply)
    return allowed.then(() => serve(request, reply))
  })
}
