import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { ClientKeyTable } from '../auth.js'
import { RateLimitedError } from '../errors.js'
import { clientOf } from './auth.js'

export interface RateLimitPluginOptions {
  table: ClientKeyTable
  /** requests per client per minute (> 0) */
  perMinute: number
  /** a shared store, so every replica counts the same requests; default: this process's memory */
  redis?: Redis
  /** prefix of the Redis keys (a fingerprint of the upstream key keeps gateways with different keys apart); default @fastify/rate-limit's */
  namespace?: string
}

/**
 * RATE_LIMIT_PER_MINUTE per client: the token's name when a valid token came with the request, else the IP
 * (which TRUST_PROXY decides). The limit runs in onRequest, before the auth check, so requests refused
 * for a bad token still count against their IP and a token-guessing client runs into 429.
 */
async function rateLimitPlugin(app: FastifyInstance, opts: RateLimitPluginOptions): Promise<void> {
  const { table } = opts
  await app.register(rateLimit, {
    max: opts.perMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => {
      const name = clientOf(request, table).name
      return name === undefined ? `ip:${request.ip}` : `client:${name}`
    },
    errorResponseBuilder: (_request, context) => new RateLimitedError(context.after),
    ...(opts.redis === undefined
      ? {}
      : {
          redis: opts.redis,
          nameSpace: opts.namespace,
          // A Redis outage must not turn every request into a 500: the limit is skipped until Redis is back.
          skipOnError: true
        })
  })
}

export default fp(rateLimitPlugin, { name: 'mj-rate-limit', fastify: '5.x', dependencies: ['mj-auth'] })
