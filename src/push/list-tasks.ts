import type { UpstreamClient } from '../upstream/client.js'
import { listedTasks } from '../upstream/json-array.js'
import { LIST_PATH } from '../tasks/list-service.js'

/**
 * One POST /mj/task/list-by-condition: the asked tasks the upstream found, each as its own bytes. Throws on
 * anything but a 200 JSON array (an empty body or `null` is an empty list).
 */
export async function listTasks(upstream: UpstreamClient, ids: readonly string[]): Promise<Map<string, Buffer>> {
  const res = await upstream.request({ method: 'POST', path: LIST_PATH, body: Buffer.from(JSON.stringify({ ids })), idempotent: true })
  if (res.status !== 200) throw new Error(`list-by-condition answered HTTP ${res.status}`)
  return listedTasks(res.body, ids)
}
