import { Transform, type TransformCallback } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { ClientKeyTable } from '../clients/client-keys.js'
import type { ClientInflight, SubmitBytes } from '../clients/client-inflight.js'
import { OverloadedError, RateLimitedError } from '../http/errors.js'
import { clientOf } from '../clients/identity.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** a submit (any path of the pass-through list's submit kind, under any mode prefix): SUBMIT_INFLIGHT_MAX_BYTES */
    submit?: boolean
    /** a stream held open for minutes (the events routes): bounded by their own subscriber limits, not CLIENT_MAX_INFLIGHT */
    longLived?: boolean
  }
}

export interface FairnessOptions {
  table: ClientKeyTable
  inflight: ClientInflight
  submitBytes: SubmitBytes
}

/** what a refused client is told to wait, in seconds: in-flight work clears quickly */
const RETRY_AFTER_SECONDS = '1'

/**
 * CLIENT_MAX_INFLIGHT (429) and SUBMIT_INFLIGHT_MAX_BYTES (503) on every route of the /mj scope, in preParsing:
 * after the token check (a refused token holds nothing) and before the body is read, so a submit whose
 * content-length does not fit is answered without reading it. A body without a length is counted as it
 * arrives and cut off when it stops fitting. Both are given back when the response is done or the client goes.
 */
async function fairnessPlugin(app: FastifyInstance, { table, inflight, submitBytes }: FairnessOptions): Promise<void> {
  app.addHook('preParsing', (request, reply, payload, done) => {
    const route = request.routeOptions.config
    if (route.longLived === true) {
      done(null, payload)
      return
    }
    const leave = inflight.enter(clientOf(request, table))
    if (leave === undefined) {
      reply.header('retry-after', RETRY_AFTER_SECONDS)
      done(new RateLimitedError(`${RETRY_AFTER_SECONDS} second`))
      return
    }
    reply.raw.once('close', leave)
    if (route.submit !== true) {
      done(null, payload)
      return
    }
    const declared = Number(request.headers['content-length'])
    if (Number.isSafeInteger(declared) && request.headers['transfer-encoding'] === undefined) {
      if (!submitBytes.reserve(declared)) {
        overloaded(reply)
        done(new OverloadedError())
        return
      }
      reply.raw.once('close', () => submitBytes.release(declared))
      done(null, payload)
      return
    }
    let held = 0
    reply.raw.once('close', () => submitBytes.release(held))
    const counted = new Transform({
      transform(chunk: Buffer, _enc, next: TransformCallback) {
        if (!submitBytes.reserve(chunk.length)) {
          overloaded(reply)
          next(new OverloadedError())
          return
        }
        held += chunk.length
        next(null, chunk)
      }
    })
    payload.on('error', (err) => counted.destroy(err))
    done(null, payload.pipe(counted))
  })
}

function overloaded(reply: FastifyReply): void {
  reply.header('retry-after', RETRY_AFTER_SECONDS)
}

export default fp(fairnessPlugin, { name: 'mj-fairness', fastify: '5.x', dependencies: ['mj-auth'] })
