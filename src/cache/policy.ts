/**
 * The caching policy, pure: what an upstream 200 body means and how long it may be reused.
 * No I/O and no clock: `nowMs` is a parameter.
 */

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['SUCCESS', 'FAILURE', 'CANCEL'])

export interface CacheRules {
  ttlSeconds: number
  urlExpiryMarginSeconds: number
  pollCacheMs: number
}

export type Classification =
  /** empty body or `null`: midjourney-proxy's answer for an unknown id */
  | { kind: 'not_found' }
  /** not a JSON object */
  | { kind: 'bad'; reason: string }
  /** a JSON object for another id: passed through, never cached */
  | { kind: 'foreign' }
  /** ttlMs 0: terminal but its imageUrl is already inside the margin, so not cached */
  | { kind: 'terminal'; ttlMs: number }
  | { kind: 'live'; ttlMs: number }

export function classify(body: Buffer, requestedId: string, nowMs: number, rules: CacheRules): Classification {
  const text = body.toString('utf8').trim()
  if (text === '' || text === 'null') return { kind: 'not_found' }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return { kind: 'bad', reason: 'body is not JSON' }
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { kind: 'bad', reason: 'body is not a JSON object' }
  }
  const task = parsed as Record<string, unknown>
  if (task['id'] !== requestedId) return { kind: 'foreign' }
  if (typeof task['status'] === 'string' && TERMINAL_STATUSES.has(task['status'])) {
    return { kind: 'terminal', ttlMs: terminalTtlMs(task['imageUrl'], nowMs, rules) }
  }
  return { kind: 'live', ttlMs: rules.pollCacheMs }
}

/** CACHE_TTL_SECONDS, but never past the imageUrl's `ex=` expiry minus the margin; 0 = do not cache. */
export function terminalTtlMs(imageUrl: unknown, nowMs: number, rules: CacheRules): number {
  const ttl = rules.ttlSeconds * 1000
  const expiry = imageUrlExpiry(imageUrl)
  if (expiry === undefined) return ttl
  const usableUntil = (expiry - rules.urlExpiryMarginSeconds) * 1000
  return Math.max(0, Math.min(ttl, Math.floor(usableUntil - nowMs)))
}

/** The `ex=` parameter of a Discord-style signed CDN URL: a hexadecimal Unix time in seconds. */
export function imageUrlExpiry(imageUrl: unknown): number | undefined {
  if (typeof imageUrl !== 'string' || imageUrl === '') return undefined
  let ex: string | null
  try {
    ex = new URL(imageUrl).searchParams.get('ex')
  } catch {
    return undefined
  }
  if (ex === null || !/^[0-9a-fA-F]{1,12}$/.test(ex)) return undefined
  return parseInt(ex, 16)
}
