import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { RateLimitedError } from '../http/errors.js'
import { rateLimitKey, type RateLimitCounter } from '../rate-limit/counter.js'
import { clientOf } from './client-auth.js'

export interface RateLimitPluginOptions {
  table: ClientKeyTable
  /** RATE_LIMIT_PER_MINUTE's counter: its store is this process's memory, or with REDIS_URL the shared one */
  counter: RateLimitCounter
}

/**
 * RATE_LIMIT_PER_MINUTE per client: the token's name when a valid token came with the request, else the IP
 * (which TRUST_PROXY decides). The limit runs in onRequest, before the auth check, so requests refused
 * for a bad token still count against their IP and a token-guessing client runs into 429.
 */
async function rateLimitPlugin(app: FastifyInstance, { table, counter }: RateLimitPluginOptions): Promise<void> {
  await app.register(rateLimit, {
    max: counter.max,
    timeWindow: counter.windowMs,
    keyGenerator: (request) => rateLimitKey(clientOf(request, table), request.ip),
    errorResponseBuilder: (_request, context) => new RateLimitedError(context.after),
    store: counter.storeCtor()
  })
}

export default fp(rateLimitPlugin, { name: 'mj-rate-limit', fastify: '5.x', dependencies: ['mj-auth'] })
