import type { UpstreamClient } from '../upstream/client.js'
import { arrayElementSources } from '../upstream/json-array.js'
import { LIST_PATH } from '../tasks/list-service.js'

/**
 * One POST /mj/task/list-by-condition: the asked tasks the upstream found, each as its own bytes. Throws on
 * anything but a 200 JSON array (an empty body or `null` is an empty list).
 */
export async function listTasks(upstream: UpstreamClient, ids: readonly string[]): Promise<Map<string, Buffer>> {
  const res = await upstream.request({ method: 'POST', path: LIST_PATH, body: Buffer.from(JSON.stringify({ ids })), idempotent: true })
  if (res.status !== 200) throw new Error(`list-by-condition answered HTTP ${res.status}`)
  const text = res.body.toString('utf8').trim()
  const found = new Map<string, Buffer>()
  if (text === '' || text === 'null') return found
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new Error('list-by-condition answered a body that is not JSON')
  }
  if (!Array.isArray(parsed)) throw new Error('list-by-condition answered a body that is not a JSON array')
  const asked = new Set(ids)
  const sources = arrayElementSources(text)
  parsed.forEach((task: unknown, i) => {
    const id = task !== null && typeof task === 'object' ? (task as Record<string, unknown>)['id'] : undefined
    if (typeof id === 'string' && asked.has(id) && !found.has(id)) found.set(id, Buffer.from(sources[i] as string))
  })
  return found
}
