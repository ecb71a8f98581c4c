/**
 * The ceiling: bare Fastify (no logger, no hooks, no schema) answering the hit path's exact response — the same
 * status, the same headers (the security headers, the rate limit's, x-cache, etag, cache-control, content-type)
 * and the same body bytes the gateway sends on a HIT — from a Map.
 */
import Fastify from 'fastify'
import { etagOf, JSON_CONTENT_TYPE } from '../../src/cache/task-cache.js'
import { SECURITY_HEADERS } from '../../src/http/security-headers.js'
import { serveIpc } from './ipc.js'

export interface LoadArg {
  upstream: string
  apiKey: string
  ids: string[]
}

interface Stored {
  body: Buffer
  etag: string
}

const bodies = new Map<string, Stored>()
let served = 0
const app = Fastify()
app.get<{ Params: { id: string } }>('/mj/task/:id/fetch', (request, reply) => {
  const hit = bodies.get(request.params.id)
  if (hit === undefined) {
    reply.code(404).send()
    return
  }
  // a synchronous handler that returns nothing: the cheapest way Fastify answers
  reply
    .headers(SECURITY_HEADERS)
    // the gateway's values under the bench's limit (1e9 a minute): as many bytes
    .header('x-ratelimit-limit', 1_000_000_000)
    .header('x-ratelimit-remaining', 999_999_000 + (++served % 1000))
    .header('x-ratelimit-reset', 60)
    .header('x-cache', 'HIT')
    .header('etag', hit.etag)
    .header('cache-control', 'private, max-age=3599')
    .header('content-type', JSON_CONTENT_TYPE)
    .send(hit.body)
})
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()

serveIpc(typeof address === 'object' && address !== null ? address.port : 0, {
  /** fetches every id's body once from the upstream */
  async load(raw) {
    const { upstream, apiKey, ids } = raw as LoadArg
    for (const id of ids) {
      const res = await fetch(`${upstream}/mj/task/${id}/fetch`, { headers: { authorization: `Bearer ${apiKey}` } })
      const body = Buffer.from(await res.arrayBuffer())
      bodies.set(id, { body, etag: etagOf(body) })
    }
    let bytes = 0
    for (const { body } of bodies.values()) bytes += body.length
    return { entries: bodies.size, bytes }
  }
})
