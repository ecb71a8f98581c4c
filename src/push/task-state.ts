import { createHash } from 'node:crypto'
import { TERMINAL_STATUSES } from '../cache/policy.js'

/** What a subscriber is told about: the fields whose change makes an event (CONTRACT §11). */
export interface TaskState {
  readonly id: string
  readonly terminal: boolean
  /** a short digest of status, progress and imageUrl: the event id, and what "changed" compares */
  readonly version: string
}

const text = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '')

/** The state of a task body (upstream bytes); undefined when it is not a JSON object with a string id. */
export function taskState(body: Buffer): TaskState | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined
  const task = parsed as Record<string, unknown>
  const id = task['id']
  if (typeof id !== 'string') return undefined
  const status = text(task['status'])
  const version = createHash('sha1')
    .update(`${status}\0${text(task['progress'])}\0${text(task['imageUrl'])}`)
    .digest('base64url')
    .slice(0, 10)
  return { id, terminal: TERMINAL_STATUSES.has(status), version }
}
