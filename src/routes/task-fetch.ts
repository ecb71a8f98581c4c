import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TaskCache } from '../cache/task-cache.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import type { TaskService } from '../tasks/fetch-service.js'
import type { Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../plugins/client-auth.js'

export const FETCH_ROUTE = '/mj/task/:id/fetch'

export const TASK_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'

export const taskIdParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: TASK_ID_PATTERN } },
  required: ['id']
} as const

interface Deps {
  cache: TaskCache
  service: TaskService
  metrics: GatewayMetrics
  ownership: Ownership
  clients: ClientKeyTable
}

type FetchRequest = FastifyRequest<{ Params: { id: string } }>

/** `If-None-Match` holds this etag (a list, `*` and weak forms included). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  if (header === etag || header === '*') return true
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)
}

function send(request: FetchRequest, reply: FastifyReply, body: Buffer, etag: string, cacheControl: string, cache: string): FastifyReply {
  reply.header('x-cache', cache).header('etag', etag).header('cache-control', cacheControl)
  if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send()
  return reply.header('content-type', JSON_CONTENT_TYPE).send(body)
}

export async function taskFetchRoutes(app: FastifyInstance, { cache, service, metrics, ownership, clients }: Deps): Promise<void> {
  const miss = async (request: FetchRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const served = await service.fetch(request.params.id, clientOf(request, clients).name)
    if (served.kind === 'task') return send(request, reply, served.body, served.etag, served.cacheControl, served.cache)
    reply.code(served.status).header('content-type', served.contentType || JSON_CONTENT_TYPE)
    if (served.retryAfter !== undefined) reply.header('retry-after', served.retryAfter)
    return reply.send(served.body)
  }

  // Not async: a hit answers synchronously, without a promise per request; only a miss returns one.
  const serve = (request: FetchRequest, reply: FastifyReply): Promise<FastifyReply> | undefined => {
    const now = Date.now()
    const hit = cache.fresh(request.params.id, now)
    if (hit === undefined) return miss(request, reply)
    metrics.lookup('hit')
    const cacheControl = hit.terminal ? `private, max-age=${Math.floor((hit.freshUntil - now) / 1000)}` : 'no-cache'
    send(request, reply, hit.body, hit.etag, cacheControl, 'HIT')
    return undefined
  }

  // CONTRACT §9: another client's task is an unknown id, decided before the cache or upstream is looked at
  app.get(FETCH_ROUTE, { schema: { params: taskIdParams } }, (request: FetchRequest, reply) => {
    const allowed = ownership.assertReadable(clientOf(request, clients), request.params.id, FETCH_ROUTE)
    if (allowed === undefined) return serve(request, reply)
    return allowed.then(() => serve(request, reply))
  })
}
