import type { IncomingMessage } from 'node:http'
import { BadRequestError, HeadersTooLargeError, UriTooLongError } from './errors.js'

export const MAX_HEADER_BYTES = 16 * 1024
export const MAX_HEADER_COUNT = 100
export const MAX_URL_BYTES = 2048

const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** A GET, HEAD or OPTIONS that carries a body: its unread body must not be taken for the next request on the socket. */
export function bodyOnBodyless(req: IncomingMessage): boolean {
  if (!BODYLESS.has(req.method as string)) return false
  const cl = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

/**
 * What no honest client sends, refused before any route does work: an absurd URL, a header flood, a body on
 * GET/HEAD/OPTIONS. (Both content-length and transfer-encoding, the request-smuggling pair, never get this far:
 * Node's parser refuses them.) Undefined when the request passes.
 */
export function requestProblem(req: IncomingMessage): Error | undefined {
  if ((req.url as string).length > MAX_URL_BYTES) return new UriTooLongError(MAX_URL_BYTES)
  if (req.rawHeaders.length > 2 * MAX_HEADER_COUNT) return new HeadersTooLargeError(MAX_HEADER_COUNT)
  if (bodyOnBodyless(req)) return new BadRequestError(`a ${req.method as string} request must not carry a body`)
  return undefined
}
