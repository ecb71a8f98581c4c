import type { HeaderList } from './header-list.js'

/** Headers a browser frontend sends to the gateway and may read back from it. */
const ALLOWED_HEADERS = ['authorization', 'mj-api-secret', 'content-type', 'if-none-match'].join(', ')
export const CORS_EXPOSED_HEADERS: readonly string[] = ['etag', 'x-cache', 'x-cache-hits', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']
const EXPOSED = CORS_EXPOSED_HEADERS.join(', ')
const METHODS = 'GET, HEAD, POST'
const PREFLIGHT_MAX_AGE_SECONDS = 600

/**
 * CORS_ORIGINS: an allowed origin is echoed back (never `*`) with the readable headers exposed; any other origin gets
 * no CORS header at all, and its preflight is not answered. Every answer says `vary: Origin` so a cache never mixes
 * them. Tokens travel in headers, not cookies, so no credentials mode.
 */
export class CorsPolicy {
  private readonly origins: ReadonlySet<string>

  constructor(origins: readonly string[]) {
    this.origins = new Set(origins)
  }

  /** CORS_ORIGINS is set */
  get enabled(): boolean {
    return this.origins.size > 0
  }

  /** Appends the CORS headers of an answer to a request from `origin` (nothing when CORS is off). */
  responseHeaders(origin: string | undefined, into: HeaderList): void {
    if (this.origins.size === 0) return
    into.push('vary', 'Origin')
    if (origin !== undefined && this.origins.has(origin)) into.push('access-control-allow-origin', origin, 'access-control-expose-headers', EXPOSED)
  }

  /** A preflight from an allowed origin: appends what it may do and returns true; false for any other origin. */
  preflightHeaders(origin: string | undefined, into: HeaderList): boolean {
    if (origin === undefined || !this.origins.has(origin)) return false
    into.push('access-control-allow-methods', METHODS, 'access-control-allow-headers', ALLOWED_HEADERS, 'access-control-max-age', PREFLIGHT_MAX_AGE_SECONDS)
    return true
  }
}
