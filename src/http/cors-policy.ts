/** Headers a browser frontend sends to the gateway (preflight `access-control-allow-headers`). */
export const CORS_ALLOWED_HEADERS: readonly string[] = ['authorization', 'mj-api-secret', 'content-type', 'if-none-match']
/** Headers a browser frontend may read back from the gateway. */
export const CORS_EXPOSED_HEADERS: readonly string[] = ['etag', 'x-cache', 'x-cache-hits', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']
export const CORS_METHODS: readonly string[] = ['GET', 'HEAD', 'POST']
export const CORS_MAX_AGE_SECONDS = 600

/**
 * CORS_ORIGINS as one rule for every answer: the Fastify plugin (plugins/cors.ts) is configured from it, and the
 * answers written outside Fastify (the hit lane, the parser's bare answers) take their headers from pairs(), so an
 * allowed origin can read every answer the gateway makes, whoever writes it.
 */
export class CorsPolicy {
  private readonly allowed: ReadonlySet<string>
  private readonly exposed = CORS_EXPOSED_HEADERS.join(', ')

  constructor(origins: readonly string[]) {
    this.allowed = new Set(origins)
  }

  /** CORS_ORIGINS is set */
  get enabled(): boolean {
    return this.allowed.size > 0
  }

  /** an exact match of an allowed origin (never a pattern, never '*') */
  allows(origin: string | undefined): boolean {
    return origin !== undefined && this.allowed.has(origin)
  }

  /**
   * The CORS headers of an answer to a request from `origin`, as a flat name/value list and in @fastify/cors's
   * order: `vary` whenever CORS is on (a shared cache must not mix origins), the origin and the readable headers
   * when it is allowed.
   */
  pairs(origin: string | undefined): string[] {
    if (this.allowed.size === 0) return []
    if (!this.allows(origin)) return ['vary', 'Origin']
    return ['vary', 'Origin', 'access-control-allow-origin', origin as string, 'access-control-expose-headers', this.exposed]
  }
}
