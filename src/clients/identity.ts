import type { IncomingMessage } from 'node:http'
import type { FastifyRequest } from 'fastify'
import type { ClientIdentity, ClientKeyTable } from './client-keys.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** memo of clientOf(): null until first asked */
    mjClient: ClientIdentity | null
  }
}

const IDENTITY = Symbol('mjgw.client')
type Identified = IncomingMessage & { [IDENTITY]?: ClientIdentity }

/**
 * Who sent the request, worked out once per request whoever asks first: the hit lane, or on the Fastify path the
 * rate limit (onRequest) and the auth check (preParsing). A request the lane leaves to Fastify is not identified twice.
 */
export function identityOf(req: IncomingMessage, table: ClientKeyTable): ClientIdentity {
  return ((req as Identified)[IDENTITY] ??= table.identify(req.headers))
}

/** identityOf() for a Fastify request, kept on it for the access line and the log serializer. */
export function clientOf(request: FastifyRequest, table: ClientKeyTable): ClientIdentity {
  return (request.mjClient ??= identityOf(request.raw, table))
}
