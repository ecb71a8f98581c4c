import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import { OverloadedError } from '../http/errors.js'
import { LagJudge, SHED_RETRY_AFTER_SECONDS, sampleWindowMs } from '../http/load-shedding.js'

export interface SheddingPluginOptions {
  /** EVENT_LOOP_MAX_DELAY_MS (> 0): while the mean event-loop delay stays above this, requests get 503 + retry-after */
  maxEventLoopDelayMs: number
}

/**
 * Load shedding (src/http/load-shedding.ts) with @fastify/under-pressure. Registered in the /mj scope: /healthz,
 * /readyz and /metrics are never shed. The hit lane leaves requests to this while under pressure.
 */
async function sheddingPlugin(app: FastifyInstance, { maxEventLoopDelayMs }: SheddingPluginOptions): Promise<void> {
  const windowMs = sampleWindowMs(maxEventLoopDelayMs)
  const judge = new LagJudge(windowMs)
  await app.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    sampleInterval: windowMs,
    // Called for each request while the last window lagged: returning nothing serves the request, a rejected
    // promise ends it with that error (in the error shape, through the error handler).
    pressureHandler: (_request, reply) => {
      if (!judge.shed(Date.now())) return
      reply.header('retry-after', SHED_RETRY_AFTER_SECONDS)
      return Promise.reject(new OverloadedError())
    }
  })
}

export default fp(sheddingPlugin, { name: 'mj-shedding', fastify: '5.x' })
