import createError from '@fastify/error'

/** What an upstream call can fail with (src/upstream/client.ts, answer.ts), each a 5xx the client gets. */
export const UpstreamAuthError = createError('MJGW_UPSTREAM_AUTH', 'upstream refused the gateway credentials (HTTP %s)', 502)
export const UpstreamHttpError = createError('MJGW_UPSTREAM_ERROR', 'upstream failed with HTTP %s', 502)
export const UpstreamUnreachableError = createError('MJGW_UPSTREAM_UNREACHABLE', 'upstream unreachable (%s)', 502)
export const UpstreamTimeoutError = createError('MJGW_UPSTREAM_TIMEOUT', 'upstream did not answer within %s ms', 504)
export const UpstreamBadResponseError = createError('MJGW_UPSTREAM_BAD_RESPONSE', 'upstream sent an unusable response: %s', 502)
