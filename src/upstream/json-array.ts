import { UpstreamBadResponseError } from './failures.js'

const WHITESPACE = new Set([' ', '\t', '\n', '\r'])

/**
 * The source text of each element of a JSON array, as the upstream wrote it.
 * A task taken from a list answer is cached and later served by /fetch, whose rule is "the upstream
 * body, byte for byte" (docs/caching.md §1): re-serializing a parsed element would change escapes (a Go relay writes `&` as
 * `\u0026`) and number forms. No JSON library hands out element source text, hence this scanner.
 *
 * `text` must already have passed JSON.parse as an array; on anything else the result is meaningless.
 */
export function arrayElementSources(text: string): string[] {
  const out: string[] = []
  let depth = 0
  let start = -1
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
      continue
    }
    if (depth === 1 && start < 0 && c !== ',' && c !== ']' && !WHITESPACE.has(c)) start = i
    if (c === '"') {
      inString = true
    } else if (c === '[' || c === '{') {
      depth++
    } else if (c === ']' || c === '}') {
      depth--
      if (depth === 0 && start >= 0) out.push(text.slice(start, i).trimEnd())
    } else if (c === ',' && depth === 1) {
      out.push(text.slice(start, i).trimEnd())
      start = -1
    }
  }
  return out
}

/**
 * The asked tasks of a list-by-condition answer, each as the bytes the upstream wrote for it (the first of a
 * repeated id wins); tasks not asked for are left out. An empty body or `null` is an empty list, as midjourney-proxy
 * answers no match with `[]`. Anything but a JSON array is an unusable upstream answer.
 */
export function listedTasks(body: Buffer, ids: readonly string[]): Map<string, Buffer> {
  const text = body.toString('utf8').trim()
  const found = new Map<string, Buffer>()
  if (text === '' || text === 'null') return found
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new UpstreamBadResponseError('list body is not JSON')
  }
  if (!Array.isArray(parsed)) throw new UpstreamBadResponseError('list body is not a JSON array')
  const asked = new Set(ids)
  const sources = arrayElementSources(text)
  parsed.forEach((task: unknown, i) => {
    const id = task !== null && typeof task === 'object' ? (task as Record<string, unknown>)['id'] : undefined
    if (typeof id === 'string' && asked.has(id) && !found.has(id)) found.set(id, Buffer.from(sources[i] as string))
  })
  return found
}
