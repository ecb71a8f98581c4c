/**
 * The fake upstream as a small task world for the push tests: tasks whose state a test sets, served by
 * GET /mj/task/:id/fetch (unknown: an empty 200, midjourney-proxy's answer) and POST /mj/task/list-by-condition
 * (known tasks among the ids asked, in the upstream's own bytes).
 */
import type { Test } from 'tap'
import { idFromUrl, startSimulatedUpstream, taskBody, type SimulatedUpstream } from '../../src/demo/simulated-upstream.js'
import { startGateway, type Gateway, type GatewayOptions } from './gateway.js'

export interface TaskWorld {
  /** sets a task's state; returns the exact body the upstream now sends for it */
  set(id: string, status: string, overrides?: Record<string, unknown>): string
  remove(id: string): void
  body(id: string): string | undefined
  /** the next n list calls answer 503 */
  failLists(n: number): void
  readonly listCalls: number
  readonly fetchCalls: number
  /** ids asked in each list call so far */
  readonly listed: string[][]
}

export function taskWorld(up: SimulatedUpstream): TaskWorld {
  const tasks = new Map<string, string>()
  let failing = 0
  up.setHandler((req) => {
    if (req.method === 'POST' && req.url === '/mj/task/list-by-condition') {
      if (failing > 0) {
        failing--
        return { kind: 'json', status: 503, body: { error: 'busy' } }
      }
      const ids = (JSON.parse(req.body.toString()) as { ids: string[] }).ids
      const found = ids.map((id) => tasks.get(id)).filter((b): b is string => b !== undefined)
      return { kind: 'raw', body: `[${found.join(',')}]` }
    }
    const id = req.method === 'GET' ? idFromUrl(req.url) : undefined
    if (id !== undefined) return { kind: 'raw', body: tasks.get(id) ?? '' }
    return { kind: 'json', status: 404, body: { error: 'no route' } }
  })
  return {
    set(id, status, overrides) {
      const body = JSON.stringify(taskBody(id, status, overrides))
      tasks.set(id, body)
      return body
    },
    remove(id) {
      tasks.delete(id)
    },
    body: (id) => tasks.get(id),
    failLists(n) {
      failing = n
    },
    get listCalls() {
      return up.requests.filter((r) => r.url === '/mj/task/list-by-condition').length
    },
    get fetchCalls() {
      return up.requests.filter((r) => r.method === 'GET' && idFromUrl(r.url) !== undefined).length
    },
    get listed() {
      return up.requests
        .filter((r) => r.url === '/mj/task/list-by-condition')
        .map((r) => (JSON.parse(r.body.toString()) as { ids: string[] }).ids)
    }
  }
}

/** The gateway in front of a fresh fake upstream run as a task world (all closed in teardown). */
export async function pushGateway(
  t: Test,
  env: Record<string, string> = {},
  opts: Omit<GatewayOptions, 'upstreamUrl'> = {}
): Promise<{ gw: Gateway; world: TaskWorld; upstream: SimulatedUpstream }> {
  const upstream = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => upstream.close())
  const world = taskWorld(upstream)
  const gw = await startGateway(t, env, { ...opts, upstreamUrl: upstream.url })
  return { gw, world, upstream }
}
