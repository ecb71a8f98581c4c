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
  const token = new URL(request.url, 'http://gateway.invalid').searchParams.get('token')
  return token === null || token === '' ? headers : { ...headers, authorization: `Bearer ${token}` }
}
