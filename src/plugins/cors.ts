import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { CorsPolicy } from '../http/cors-policy.js'
import { replyHeaders, type HeaderList } from '../http/header-list.js'
import { SECURITY_HEADERS } from '../http/security-headers.js'

export interface CorsPluginOptions {
  policy: CorsPolicy
}

/**
 * CORS_ORIGINS on every answer (src/http/cors-policy.ts says which headers; the hit lane and the early answers send the
 * same). Registered at the root before anything else: its hook runs first, so every refusal after it carries the
 * headers, and a preflight (which carries no token) is answered here, before the checks, the rate limit and auth.
 */
async function corsPlugin(app: FastifyInstance, { policy }: CorsPluginOptions): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    const headers: HeaderList = []
    const origin = request.headers.origin
    policy.responseHeaders(origin, headers)
    const preflight = request.method === 'OPTIONS' && policy.preflightHeaders(origin, headers)
    replyHeaders(reply, headers)
    if (!preflight) return done()
    // answered before the hardening hook sets them: the security headers (and no-store) go on a preflight too
    // (docs/headers.md §4, §8)
    reply.headers(SECURITY_HEADERS)
    // Safari waits for a body on a 204 without content-length: 0
    void reply.code(204).header('content-length', '0').send()
  })
  // Routes OPTIONS to this scope, so its hook sees preflights; one from an origin not allowed ends here.
  app.options('*', (_request, reply) => reply.callNotFound())
}

export default fp(corsPlugin, { name: 'mj-cors', fastify: '5.x' })
