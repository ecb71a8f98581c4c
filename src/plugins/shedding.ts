import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import { OverloadedError } from '../http/errors.js'

export interface SheddingPluginOptions {
  /** EVENT_LOOP_MAX_DELAY_MS (> 0): while the mean event-loop delay stays above this, requests get 503 + retry-after */
  maxEventLoopDelayMs: number
}

export const SHED_RETRY_AFTER_SECONDS = 10

/** The window the delay is averaged over: as long as the threshold, within 100 ms .. 1 s. */
export function sampleWindowMs(maxEventLoopDelayMs: number): number {
  return Math.min(1000, Math.max(100, maxEventLoopDelayMs))
}

/**
 * Load shedding with @fastify/under-pressure: while the event loop lags, answering 503 at once is kinder than
 * making every client wait. Registered in the /mj scope: /healthz, /readyz and /metrics are never shed.
 *
 * under-pressure judges each window by the mean delay in it, so a single stall (a long GC pause, a process
 * descheduled on a busy host) makes the *next* window look overloaded when the loop is already fine again.
 * So a request is shed only once the lag has been seen for a whole window; a lone stall sheds nothing.
 */
async function sheddingPlugin(app: FastifyInstance, { maxEventLoopDelayMs }: SheddingPluginOptions): Promise<void> {
  const windowMs = sampleWindowMs(maxEventLoopDelayMs)
  let since = 0
  let lastSeen = Number.NEGATIVE_INFINITY
  await app.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    sampleInterval: windowMs,
    // Called for each request while the last window lagged: returning nothing serves the request, a rejected
    // promise ends it with that error (in the shape of docs/errors.md §1, through the error handler).
    pressureHandler: (_request, reply) => {
      const now = Date.now()
      if (now - lastSeen > 2 * windowMs) since = now
      lastSeen = now
      if (now - since < windowMs) return
      reply.header('retry-after', SHED_RETRY_AFTER_SECONDS)
      return Promise.reject(new OverloadedError())
    }
  })
}

export default fp(sheddingPlugin, { name: 'mj-shedding', fastify: '5.x' })
