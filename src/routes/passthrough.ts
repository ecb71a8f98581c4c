import type { FastifyInstance, FastifyReply, FastifySchema, FastifySchemaCompiler } from 'fastify'
import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { identitiesConfigured, type Config } from '../config.js'
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from '../upstream/client.js'
import type { TaskListService } from '../tasks/list-service.js'
import { LIST_PATH } from '../tasks/list-service.js'
import { JSON_CONTENT_TYPE } from '../cache/task-cache.js'
import { BadRequestError, QuotaExceededError, UpstreamAuthError, UpstreamBadResponseError } from '../http/errors.js'
import { TASK_ID_PATTERN, taskIdParams } from './task-fetch.js'
import { memberKey, scanJsonObject, scanJsonObjectAsync, withoutMembers, type Member, type ScanFailure } from '../http/json-members.js'
import createError from '@fastify/error'
import { submittedTaskId, type Ownership } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { SubmitQuota } from '../clients/submit-quota.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { clientOf } from '../plugins/client-auth.js'

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
export const SEED_ROUTE = '/mj/task/:id/image-seed'

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

const ListBody = Type.Object({
  ids: Type.Array(Type.String({ pattern: TASK_ID_PATTERN }), { minItems: 1, maxItems: MAX_LIST_IDS })
})

/**
 * A top-level key as a relay reads it: case-insensitively and after NFKC folding, because a Go relay matches JSON
 * keys that way (`NOTIFYHOOK` and a Kelvin-sign `K` included).
 */
function foldedKey(body: Buffer, m: Member): string {
  return memberKey(body, m).normalize('NFKC').toLowerCase()
}

/** The upstream would call any URL a client names in `notifyHook`: that member goes, every other byte stays. */
export function withoutNotifyHook(body: Buffer, members: readonly Member[]): Buffer {
  return withoutMembers(body, members, (m) => foldedKey(body, m) === 'notifyhook')
}

/** Every `taskId` a submit names at the top level (any spelling a relay would read as it), as strings. */
export function namedTaskIds(body: Buffer, members: readonly Member[]): string[] {
  const ids: string[] = []
  for (const m of members) {
    if (foldedKey(body, m) !== 'taskid') continue
    const raw = body.toString('utf8', m.valueStart, m.end)
    const value: unknown = JSON.parse(raw)
    // a number is an id too (relays accept both); anything else names no task
    if (typeof value === 'string') ids.push(value)
    else if (typeof value === 'number') ids.push(raw)
  }
  return ids
}

/** An upstream answer, passed through with its status; 401/403 and redirects are the gateway's problem, not the client's. */
async function forward(
  upstream: UpstreamClient,
  reply: FastifyReply,
  req: UpstreamRequest,
  onAnswer?: (res: UpstreamResponse) => Promise<void>
): Promise<FastifyReply> {
  const res = await upstream.request(req)
  if (res.status === 401 || res.status === 403) throw new UpstreamAuthError(res.status)
  if (res.status >= 300 && res.status < 400) throw new UpstreamBadResponseError(`unexpected HTTP ${res.status}`)
  await onAnswer?.(res)
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
export async function passthroughRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  const { config, upstream, list, ownership, clients } = deps
  if (!passthroughEnabled(config)) return
  if (!identitiesConfigured(config)) app.log.warn(OPEN_PASSTHROUGH_WARNING)

  // every JSON body here is checked (depth included) before it is parsed; submits keep the bytes (below)
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    const scanned = scanJsonObject(body as Buffer)
    if (!scanned.ok) done(scanError(scanned.kind, scanned.reason), undefined)
    else done(null, JSON.parse((body as Buffer).toString('utf8')))
  })
  await app.register(submitRoutes, deps)

  app.get<{ Params: { id: string } }>(SEED_ROUTE, { schema: { params: taskIdParams } }, async (request, reply) => {
    const id = request.params.id
    await ownership.assertReadable(clientOf(request, clients), id, SEED_ROUTE)
    return forward(upstream, reply, { method: 'GET', path: `/mj/task/${id}/image-seed`, idempotent: true, client: clientOf(request, clients).name })
  })

  app.post<{ Body: { ids: string[] } }>(LIST_PATH, { schema: { body: ListBody }, validatorCompiler: strict }, async (request, reply) => {
    // CONTRACT §9: another client's ids are left out as unknown ids are, and never asked upstream
    const ids = await ownership.readable(clientOf(request, clients), request.body.ids, LIST_PATH)
    const listed = await list.list(ids)
    if (listed.kind === 'answer') return sendAnswer(reply, listed)
    return reply
      .header('content-type', JSON_CONTENT_TYPE)
      .header('cache-control', 'no-cache')
      .header('x-cache-hits', String(listed.hits))
      .send(listed.body)
  })
}

/** the codes Fastify's own parser and schema gave before (clients may match them), and §9's for depth */
const NotAnObjectError = createError('FST_ERR_VALIDATION', 'body must be a JSON object', 400)
const InvalidJsonError = createError('FST_ERR_CTP_INVALID_JSON_BODY', '%s', 400)

function scanError(kind: ScanFailure, reason: string): Error {
  if (kind === 'type') return new NotAnObjectError()
  if (kind === 'depth') return new BadRequestError(reason)
  return new InvalidJsonError(reason)
}

/**
 * The submit routes, in a scope of their own whose JSON bodies arrive as the raw bytes: checked and forwarded
 * without being parsed into objects and serialised again (CONTRACT §9: byte for byte but a removed `notifyHook`,
 * memory near one copy of the body, nesting deeper than 64 refused with 400).
 */
async function submitRoutes(app: FastifyInstance, { config, upstream, ownership, clients, metrics, quota }: Deps): Promise<void> {
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.submitMaxBodyBytes }, (_request, body, done) => {
    done(null, body)
  })
  for (const kind of SUBMIT_KINDS) {
    const path = `/mj/submit/${kind}`
    app.post<{ Body: Buffer | string | undefined }>(path, { bodyLimit: config.submitMaxBodyBytes }, async (request, reply) => {
      const raw = request.body
      // text/plain (Fastify's other parser) or no body at all: not an object
      if (!Buffer.isBuffer(raw)) throw new NotAnObjectError()
      const scanned = await scanJsonObjectAsync(raw)
      if (!scanned.ok) throw scanError(scanned.kind, scanned.reason)
      const client = clientOf(request, clients)
      // an action on another client's task is refused like one on an unknown task, before anything is spent
      for (const id of namedTaskIds(raw, scanned.members)) await ownership.assertReadable(client, id, path)
      if (quota !== undefined && !(await quota.admit(client))) {
        reply.header('retry-after', String(SubmitQuota.secondsToNextDay()))
        throw new QuotaExceededError(config.fairness.submitQuotaPerDay)
      }
      const body = config.allowNotifyHook ? raw : withoutNotifyHook(raw, scanned.members)
      metrics.clientSubmits.inc({ client: client.label, action: kind })
      // a submit spends money and is not idempotent: one try only
      return forward(upstream, reply, { method: 'POST', path, body, idempotent: false, client: client.name }, async (res) => {
        const id = res.status < 300 ? submittedTaskId(res.body) : undefined
        // recorded before the answer leaves, so the client's first poll already finds it
        if (id !== undefined) await ownership.record(client, id)
      })
    })
  }
}
