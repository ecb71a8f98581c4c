import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ClientIdentity, ClientKeyTable } from '../clients/client-keys.js'
import type { TaskCache } from '../cache/task-cache.js'
import type { TaskService } from '../tasks/fetch-service.js'
import type { UpstreamClient } from '../upstream/client.js'
import { FirstStates } from '../push/first-states.js'
import { BadRequestError, BadTaskIdError, RateLimitedError, UpstreamBadResponseError } from '../http/errors.js'
import { clientOf } from '../clients/identity.js'
import { rateLimitKey } from '../rate-limit/counter.js'
import { EventStream } from '../push/event-stream.js'
import { answered, openStreamOutput } from '../push/stream-output.js'
import type { Subscribers } from '../push/subscribers.js'
import { taskState, type TaskState } from '../push/task-state.js'
import type { WatchHub } from '../push/watch-hub.js'
import type { Answer } from '../upstream/answer.js'
import { sendAnswer } from './send-answer.js'
import { MAX_LIST_IDS } from './passthrough.js'
import { taskIdParams } from '../tasks/task-id.js'

export const TASK_EVENTS_ROUTE = '/mj/task/:id/events'
export const TASKS_EVENTS_ROUTE = '/mj/tasks/events'

/**
 * Refuses a task the client may not read (docs/tenancy.md §2: ownership) with the very error an unknown id gets;
 * every task read of these routes asks it. The gateway passes Ownership.assertReadable.
 */
export type TaskAccess = (client: ClientIdentity, id: string, route: string) => void | Promise<void>

/** seconds a client over a subscriber limit is asked to wait */
const LIMIT_RETRY_AFTER_SECONDS = 5

const TASK_ID = /^[A-Za-z0-9_-]{1,64}$/

interface Deps {
  cache: TaskCache
  service: TaskService
  hub: WatchHub
  subscribers: Subscribers
  table: ClientKeyTable
  access: TaskAccess
  upstream: UpstreamClient
}

/** `ids=a,b,…`: 1–100 valid task ids, no duplicates. */
export function parseIds(raw: unknown): string[] {
  if (typeof raw !== 'string' || raw === '') throw new BadRequestError('ids: expected ids=a,b,… (1 to 100 task ids)')
  const ids = raw.split(',')
  if (ids.length > MAX_LIST_IDS) throw new BadRequestError(`ids: at most ${MAX_LIST_IDS} task ids`)
  for (const id of ids) if (!TASK_ID.test(id)) throw new BadTaskIdError()
  if (new Set(ids).size !== ids.length) throw new BadRequestError('ids: a task id is named twice')
  return ids
}


/**
 * GET /mj/task/:id/events and GET /mj/tasks/events?ids=… (CONTRACT §11). No Accept negotiation: curl's `*\/*` and
 * EventSource alike get the stream, and nothing answers outside the §6 shape.
 * Everything that can fail (limits, ownership, an unknown id, the upstream) fails before the stream opens, as JSON.
 */
export async function taskEventsRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  const { cache, service, hub, subscribers, table, access } = deps
  const first = new FirstStates<Answer>(deps.upstream, async (id) => {
    const served = await service.fetch(id)
    return served.kind === 'task' ? served.body : served.answer
  })

  /**
   * The task's current body: the cache, else what the hub holds for a task it already watches (another subscriber's,
   * kept current by the refresher), else the upstream (gathered with other first states: FirstStates).
   */
  const current = async (client: ClientIdentity, id: string, route: string): Promise<Buffer | Answer> => {
    await access(client, id, route)
    return cache.fresh(id, Date.now())?.body ?? hub.known(id) ?? first.load(id)
  }

  const open = async (request: FastifyRequest, reply: FastifyReply, ids: string[], route: string): Promise<FastifyReply | undefined> => {
    const client = clientOf(request, table)
    const key = rateLimitKey(client, request.ip)
    if (!subscribers.reserve(key)) {
      reply.header('retry-after', String(LIMIT_RETRY_AFTER_SECONDS))
      throw new RateLimitedError(`${LIMIT_RETRY_AFTER_SECONDS} seconds`)
    }
    let bodies: Buffer[]
    let states: TaskState[]
    try {
      const found = await Promise.all(ids.map((id) => current(client, id, route)))
      const answer = found.find((f): f is Answer => !Buffer.isBuffer(f))
      if (answer !== undefined) {
        subscribers.release(key)
        return sendAnswer(reply, answer)
      }
      bodies = found as Buffer[]
      states = bodies.map((body, i) => {
        const state = taskState(body)
        if (state?.id !== ids[i]) throw new UpstreamBadResponseError('not a task object for the requested id')
        return state as TaskState
      })
    } catch (err) {
      subscribers.release(key)
      throw err
    }
    // the client left while its first states were read: its 'close' has come and gone, so nothing would ever end a
    // stream opened now; its place is given back
    if (reply.raw.destroyed) {
      subscribers.release(key)
      answered(reply.raw, 'events stream closed before it opened')
      return undefined
    }
    const lastEventId = request.headers['last-event-id']
    const stream = new EventStream(openStreamOutput(reply), ids, typeof lastEventId === 'string' ? lastEventId : undefined, (s) => {
      for (const id of ids) hub.unsubscribe(id, s)
      subscribers.delete(s)
      subscribers.release(key)
    })
    subscribers.add(stream)
    const now = Date.now()
    // (a stream that a terminal state ended ignores the rest: update() on a closed stream does nothing)
    ids.forEach((id, i) => {
      const known = hub.subscribe(id, stream, bodies[i] as Buffer, states[i] as TaskState, now)
      stream.update(id, known.body, known.state)
    })
    stream.opened()
    // its first states were read while the gateway began to shut down: closeAll() has come and gone, so it ends now
    // (the client's EventSource reconnects to another replica)
    if (subscribers.closing) stream.close()
    return undefined
  }

  // GET only: a HEAD would open a stream with nothing to send (a wrong method is 404, docs/errors.md)
  const config = { queryToken: true, longLived: true }
  app.get<{ Params: { id: string } }>(TASK_EVENTS_ROUTE, { schema: { params: taskIdParams }, config, exposeHeadRoute: false }, (request, reply) =>
    open(request, reply, [request.params.id], TASK_EVENTS_ROUTE)
  )
  app.get<{ Querystring: { ids?: unknown } }>(TASKS_EVENTS_ROUTE, { config, exposeHeadRoute: false }, (request, reply) =>
    open(request, reply, parseIds(request.query.ids), TASKS_EVENTS_ROUTE)
  )
}
