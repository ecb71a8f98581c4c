import { FETCH_ROUTE } from '../tasks/task-id.js'

/**
 * Which midjourney-proxy paths the gateway forwards (CONTRACT §4, §10): the default list, or PASSTHROUGH_ROUTES.
 * Kept apart from the routes so config.ts can check PASSTHROUGH_ROUTES at start-up.
 */

/** POST /mj/submit/{kind}: forwarded once (a submit spends money), notifyHook removed. */
export const SUBMIT_KINDS = [
  'imagine',
  'action',
  'blend',
  'describe',
  'modal',
  'shorten',
  'change',
  'simple-change',
  'upload-discord-images',
  'video',
  'edits'
] as const

export const LIST_PATH = '/mj/task/list-by-condition'
export const IMAGE_SEED_ROUTE = '/mj/task/:id/image-seed'

/** Served by the gateway's own cached route, never as a pass-through. */
const FETCH_PATH = FETCH_ROUTE
/** Would list every client's tasks under the one upstream key: never forwarded, whatever the configuration. */
const TASK_LIST_PATH = '/mj/task/list'

export const DEFAULT_PASSTHROUGH_ROUTES: readonly string[] = [
  ...SUBMIT_KINDS.map((kind) => `/mj/submit/${kind}`),
  '/mj/insight-face/swap',
  IMAGE_SEED_ROUTE,
  LIST_PATH
]

/** Segments are plain names or the one task-id parameter (`:id`, also written `{id}` as in the upstream's docs). */
const PATH = /^\/mj(?:\/(?:[A-Za-z0-9_.-]+|:id))+$/

/**
 * PASSTHROUGH_ROUTES: comma-separated paths under /mj/. A path with `:id` is a GET whose id must match the task-id
 * pattern (like image-seed); `/mj/task/list-by-condition` is the cached list; every other path is a submit-like
 * POST. Throws an Error whose message names the bad entry; an empty value is the default list.
 */
export function parsePassthroughRoutes(value: string): string[] {
  if (value.trim() === '') return [...DEFAULT_PASSTHROUGH_ROUTES]
  const routes: string[] = []
  for (const raw of value.split(',')) {
    const item = raw.trim()
    if (item === '') continue
    const path = item.replaceAll('{id}', ':id')
    if (!PATH.test(path) || path.split('/').some((s) => s === '.' || s === '..')) {
      throw new Error(`not a path under /mj/ (letters, digits, _ . - and :id segments): ${JSON.stringify(item)}`)
    }
    if (path.split(':id').length > 2) throw new Error(`at most one :id per path: ${JSON.stringify(item)}`)
    if (path === FETCH_PATH) throw new Error(`${FETCH_PATH} is always served (and cached); leave it out`)
    if (path === TASK_LIST_PATH) throw new Error(`${TASK_LIST_PATH} would list every client's tasks and is never forwarded`)
    if (!routes.includes(path)) routes.push(path)
  }
  if (routes.length === 0) throw new Error('no path given (PASSTHROUGH=off turns the pass-through off)')
  return routes
}

export type RouteKind = 'list' | 'task' | 'submit'

/** How a listed path is served: the cached list, a GET of a task's sub-resource (`:id`), or a submit-like POST. */
export function routeKind(path: string): RouteKind {
  if (path === LIST_PATH) return 'list'
  return path.includes(':id') ? 'task' : 'submit'
}

/** The listed paths served as `kind`, in the order listed. */
export function pathsOfKind(routes: readonly string[], kind: RouteKind): string[] {
  return routes.filter((path) => routeKind(path) === kind)
}
