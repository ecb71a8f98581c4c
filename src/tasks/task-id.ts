import createError from '@fastify/error'

/** A task id: what upstream issues (digits, in practice), bounded so no id can be a path trick or a memory sink. */
const TASK_ID = '[A-Za-z0-9_-]{1,64}'

/** The whole-string pattern: the routes' schemas and the 400 message say exactly this. */
export const TASK_ID_PATTERN = `^${TASK_ID}$`

export const BadTaskIdError = createError('MJGW_BAD_TASK_ID', `task id must match ${TASK_ID_PATTERN}`, 400)

/** Fastify params schema of every route with a task id in its path. */
export const taskIdParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: TASK_ID_PATTERN } },
  required: ['id']
} as const

export const FETCH_ROUTE = '/mj/task/:id/fetch'

/** Exactly the canonical fetch URL: anything else (a query, an escape, a trailing slash) is left to the router. */
const FETCH_URL = new RegExp(`^/mj/task/(${TASK_ID})/fetch$`)

/** The id of a canonical `GET /mj/task/{id}/fetch` URL, or undefined for any other URL. */
export function fetchUrlTaskId(url: string): string | undefined {
  return FETCH_URL.exec(url)?.[1]
}
