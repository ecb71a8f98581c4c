import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import { OverloadedError } from '../errors.js'

export interface SheddingPluginOptions {
  /** EVENT_LOOP_MAX_DELAY_MS (> 0): above this mean event-loop delay, requests get 503 + retry-after */
  maxEventLoopDelayMs: number
}

export const SHED_RETRY_AFTER_SECONDS = 10

/**
 * Load shedding with @fastify/under-pressure: when the event loop lags, answering 503 at once is kinder than
 * making every client wait. The delay is the mean over a window as long as the threshold (100 ms to 1 s), so
 * a lower threshold also reacts sooner. Registered in the /mj scope: /healthz, /readyz and /metrics are never shed.
 */
async function sheddingPlugin(app: FastifyInstance, { maxEventLoopDelayMs }: SheddingPluginOptions): Promise<void> {
  await app.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    sampleInterval: Math.min(1000, Math.max(100, maxEventLoopDelayMs)),
    retryAfter: SHED_RETRY_AFTER_SECONDS,
    customError: OverloadedError
  })
}

export default fp(sheddingPlugin, { name: 'mj-shedding', fastify: '5.x' })
