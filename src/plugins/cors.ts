import fp from 'fastify-plugin'
import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'

export interface CorsPluginOptions {
  /** exact origins (scheme://host[:port]); never '*' (config refuses it) */
  origins: readonly string[]
}

/** Headers a browser frontend sends to the gateway and may read back from it. */
const ALLOWED_HEADERS = ['authorization', 'mj-api-secret', 'content-type', 'if-none-match']
export const CORS_EXPOSED_HEADERS: readonly string[] = ['etag', 'x-cache', 'x-cache-hits', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']

/**
 * CORS_ORIGINS: an allowed origin is echoed back (with `vary: origin`); any other origin gets no CORS
 * header at all, and its preflight is not answered. Tokens travel in headers, not cookies, so no credentials mode.
 * Registered before auth: a preflight carries no token and is answered in onRequest, before the auth check.
 */
async function corsPlugin(app: FastifyInstance, { origins }: CorsPluginOptions): Promise<void> {
  const allowed = new Set(origins)
  await app.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: ['GET', 'HEAD', 'POST'],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    credentials: false,
    maxAge: 600,
    // a malformed preflight falls through to the routes (404 or 401 in the shape of docs/errors.md §1), not a text/plain 400
    strictPreflight: false
  })
}

export default fp(corsPlugin, { name: 'mj-cors', fastify: '5.x' })
