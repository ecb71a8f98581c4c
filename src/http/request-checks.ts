import type { IncomingMessage } from 'node:http'
import createError from '@fastify/error'

export const MAX_HEADER_BYTES = 16 * 1024
export const MAX_HEADER_COUNT = 100
export const MAX_URL_BYTES = 2048

export const BadRequestError = createError('MJGW_BAD_REQUEST', '%s', 400)
export const UriTooLongError = createError('MJGW_URI_TOO_LONG', 'request URL longer than %s bytes', 414)
export const HeadersTooLargeError = createError('MJGW_HEADERS_TOO_LARGE', 'more than %s request headers', 431)
export const ExpectationFailedError = createError('MJGW_EXPECTATION_FAILED', 'only Expect: 100-continue is supported', 417)

const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** A GET, HEAD or OPTIONS that carries a body: its unread body must not be taken for the next request on the socket. */
export function bodyOnBodyless(req: IncomingMessage): boolean {
  if (!BODYLESS.has(req.method as string)) return false
  const cl = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

/** Node's own test for a 100-continue expectation (lib/_http_common.js continueExpression). */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i

/**
 * What Node's HTTP server would refuse with a bare, bodiless answer of its own (it is told not to, in server.ts, so
 * the answer has the contract's shape): an HTTP/1.1 request without `Host` (RFC 9112 §3.2), and an `Expect` other
 * than 100-continue. The connection is closed after the answer.
 */
export function protocolProblem(req: IncomingMessage): Error | undefined {
  if (req.httpVersion !== '1.1') return undefined
  if (req.headers.host === undefined) return new BadRequestError('an HTTP/1.1 request must carry a Host header')
  const expect = req.headers.expect
  if (expect !== undefined && !CONTINUE.test(expect)) return new ExpectationFailedError()
  return undefined
}

/**
 * What no honest client sends, refused before any route does work: a request Node would refuse bare
 * (protocolProblem), an absurd URL, a header flood, a body on GET/HEAD/OPTIONS. (Both content-length and transfer-encoding, the request-smuggling pair, never get this far:
 * Node's parser refuses them.) Undefined when the request passes.
 */
export function requestProblem(req: IncomingMessage): Error | undefined {
  const protocol = protocolProblem(req)
  if (protocol !== undefined) return protocol
  if ((req.url as string).length > MAX_URL_BYTES) return new UriTooLongError(MAX_URL_BYTES)
  if (req.rawHeaders.length > 2 * MAX_HEADER_COUNT) return new HeadersTooLargeError(MAX_HEADER_COUNT)
  if (bodyOnBodyless(req)) return new BadRequestError(`a ${req.method as string} request must not carry a body`)
  return undefined
}
