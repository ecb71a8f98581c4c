import type { FastifyInstance, FastifyReply, FastifySchema, FastifySchemaCompiler } from 'fastify'
import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { identitiesConfigured, type Config } from '../config.js'
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from '../upstream/client.js'
import type { TaskListService } from '../tasks/list-service.js'
import { LIST_PATH } from '../tasks/list-service.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { UpstreamAuthError, UpstreamBadResponseError } from '../http/errors.js'
import { TASK_ID_PATTERN, taskIdParams } from './task-fetch.js'

/** The allowlist (CONTRACT §4): nothing else under /mj/submit is routed, so nothing else reaches upstream. */
export const SUBMIT_KINDS = [
  'imagine',
  'action',
  'blend',
  'describe',
  'modal',
  'shorten',
  'change',
  'simple-change',
  'upload-discord-images'
] as const

export const MAX_LIST_IDS = 100

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
}

type JsonObject = Record<string, unknown>

/**
 * Schemas checked without Fastify's default type coercion, which would turn `{"ids":"x"}` into `["x"]`
 * and `[123]` into `["123"]`: a malformed body is a 400, never a guess.
 */
const strict: FastifySchemaCompiler<FastifySchema> = ({ schema }) => {
  // route schemas here are TypeBox types
  const check = TypeCompiler.Compile(schema as TSchema)
  return (data: unknown) => {
    if (check.Check(data)) return { value: data }
    const first = check.Errors(data).First()
    /* c8 ignore next -- a failed Check always has a first error */
    const why = first === undefined ? 'is invalid' : `${first.path} ${first.message}`
    return { error: new Error(`body${why}`) }
  }
}

const SubmitBody = Type.Object({}, { additionalProperties: true })
const ListBody = Type.Object({
  ids: Type.Array(Type.String({ pattern: TASK_ID_PATTERN }), { minItems: 1, maxItems: MAX_LIST_IDS })
})

/**
 * The upstream would call any URL a client names in `notifyHook`. Removed case-insensitively and after
 * NFKC folding, because a Go relay matches JSON keys that way (`NOTIFYHOOK` and a Kelvin-sign `K` included).
 */
export function withoutNotifyHook(body: JsonObject): JsonObject {
  return Object.fromEntries(Object.entries(body).filter(([k]) => k.normalize('NFKC').toLowerCase() !== 'notifyhook'))
}

/** An upstream answer, passed through with its status; 401/403 and redirects are the gateway's problem, not the client's. */
async function forward(upstream: UpstreamClient, reply: FastifyReply, req: UpstreamRequest): Promise<FastifyReply> {
  const res = await upstream.request(req)
  if (res.status === 401 || res.status === 403) throw new UpstreamAuthError(res.status)
  if (res.status >= 300 && res.status < 400) throw new UpstreamBadResponseError(`unexpected HTTP ${res.status}`)
  return sendAnswer(reply.header('cache-control', 'no-store'), res)
}

function sendAnswer(reply: FastifyReply, res: UpstreamResponse): FastifyReply {
  // an empty header is as good as none
  reply.code(res.status).header('content-type', res.contentType || JSON_CONTENT_TYPE)
  if (res.retryAfter) reply.header('retry-after', res.retryAfter)
  return reply.send(res.body)
}

/**
 * Submit, image-seed and list-by-condition (CONTRACT §4 "pass-through"). Registered inside the /mj scope, so the
 * client-token and rate-limit hooks there guard them. Forwarded with UpstreamClient rather than
 * @fastify/http-proxy: the body has to be parsed anyway (notifyHook), and the client then brings the key
 * injection, the header allowlist (no client header reaches upstream at all), the time budget, the no-retry rule
 * for submits, the §6 error mapping and the per-attempt metrics that a proxy would need re-plumbing for.
 */
export async function passthroughRoutes(app: FastifyInstance, { config, upstream, list }: Deps): Promise<void> {
  if (!passthroughEnabled(config)) return
  if (!identitiesConfigured(config)) app.log.warn(OPEN_PASSTHROUGH_WARNING)

  for (const kind of SUBMIT_KINDS) {
    const path = `/mj/submit/${kind}`
    app.post<{ Body: JsonObject }>(
      path,
      { bodyLimit: config.submitMaxBodyBytes, schema: { body: SubmitBody }, validatorCompiler: strict },
      async (request, reply) => {
        const body = config.allowNotifyHook ? request.body : withoutNotifyHook(request.body)
        // a submit spends money and is not idempotent: one try only
        return forward(upstream, reply, { method: 'POST', path, body: Buffer.from(JSON.stringify(body)), idempotent: false })
      }
    )
  }

  app.get<{ Params: { id: string } }>('/mj/task/:id/image-seed', { schema: { params: taskIdParams } }, async (request, reply) =>
    forward(upstream, reply, { method: 'GET', path: `/mj/task/${request.params.id}/image-seed`, idempotent: true })
  )

  app.post<{ Body: { ids: string[] } }>(LIST_PATH, { schema: { body: ListBody }, validatorCompiler: strict }, async (request, reply) => {
    const listed = await list.list(request.body.ids)
    if (listed.kind === 'answer') return sendAnswer(reply, listed)
    return reply
      .header('content-type', JSON_CONTENT_TYPE)
      .header('cache-control', 'no-cache')
      .header('x-cache-hits', String(listed.hits))
      .send(listed.body)
  })
}
