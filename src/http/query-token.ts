import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the route takes the client token from a `token` query parameter too (CONTRACT §11: EventSource sends no headers) */
    queryToken?: boolean
  }
}

/**
 * The headers client auth reads. On a route with `config.queryToken`, a `token` query parameter counts as
 * `Authorization: Bearer {token}` when the request carries no credential header of its own.
 */
export function credentialHeaders(request: FastifyRequest): IncomingHttpHeaders {
  const headers = request.headers
  if (request.routeOptions.config.queryToken !== true) return headers
  if (headers.authorization !== undefined || headers['mj-api-secret'] !== undefined) return headers
  const token = queryToken(request.url)
  return token === undefined || token === '' ? headers : { ...headers, authorization: `Bearer ${token}` }
}

/** The query string as the router reads it: what follows the first `?` or `#`; undefined when there is none. */
export function queryOf(url: string): string | undefined {
  const at = url.search(/[?#]/)
  return at < 0 ? undefined : url.slice(at + 1)
}

/** the `token` parameter (its name unescaped as any query parser does; the access log hides it: loggableUrl) */
function queryToken(url: string): string | undefined {
  return new URLSearchParams(queryOf(url) ?? '').get('token') ?? undefined
}
