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

/**
 * The `token` parameter, its name written exactly so: the very parameter the access log hides (loggableUrl). A name
 * written otherwise (`%74oken=`) would reach the log in clear, so it is no token.
 */
function queryToken(url: string): string | undefined {
  const part = url
    .slice(url.indexOf('?') + 1)
    .split('&')
    .find((p) => p.startsWith('token='))
  // (decoded as a query string is: `+` is a space, a broken escape stays as it is)
  return part === undefined ? undefined : (new URLSearchParams(part).get('token') as string)
}
