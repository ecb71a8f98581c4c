import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { RateLimitedError } from '../http/errors.js'
import { replyHeaders } from '../http/header-list.js'
import { rateLimitKey, type RateLimitCounter } from '../rate-limit/counter.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'

export interface RateLimitPluginOptions {
  table: ClientKeyTable
  /** RATE_LIMIT_PER_MINUTE's counter (src/rate-limit/counter.ts), the one the hit lane counts in too */
  counter: RateLimitCounter
}

/**
 * RATE_LIMIT_PER_MINUTE on every route of the scope. It runs in onRequest, before the auth check (preParsing), so
 * requests refused for a bad token still count against their IP and a token-guessing client runs into 429.
 */
async function rateLimitPlugin(app: FastifyInstance, { table, counter }: RateLimitPluginOptions): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    counter.admit(
      request.raw,
      () => rateLimitKey(clientOf(request, table), request.ip),
      (admission) => {
        if (admission === null) return done()
        replyHeaders(reply, admission.headers)
        if (!admission.over) return done()
        reply.header('retry-after', admission.resetSeconds)
        done(new RateLimitedError(`${admission.resetSeconds} s`))
      }
    )
  })
}

export default fp(rateLimitPlugin, { name: 'mj-rate-limit', fastify: '5.x', dependencies: ['mj-auth'] })
