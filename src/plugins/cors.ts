import fp from 'fastify-plugin'
import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS, CORS_MAX_AGE_SECONDS, CORS_METHODS, type CorsPolicy } from '../http/cors-policy.js'

export interface CorsPluginOptions {
  /** CORS_ORIGINS (exact origins, never '*': config refuses it) */
  policy: CorsPolicy
}

/**
 * CORS_ORIGINS: an allowed origin is echoed back (with `vary: origin`); any other origin gets no CORS
 * header at all, and its preflight is not answered. Tokens travel in headers, not cookies, so no credentials mode.
 * Registered first of all, at the root: its onRequest hook runs before any check can refuse the request, so every
 * answer (a 404, a 414, a body on a GET, a 401, a 429, a 5xx) carries the headers and a browser can read why.
 * A preflight carries no token and is answered in that hook, before the auth check.
 */
async function corsPlugin(app: FastifyInstance, { policy }: CorsPluginOptions): Promise<void> {
  await app.register(cors, {
    origin: (origin, callback) => callback(null, policy.allows(origin)),
    methods: [...CORS_METHODS],
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    credentials: false,
    maxAge: CORS_MAX_AGE_SECONDS,
    // a malformed preflight falls through to the routes (404 or 401 in the contract's shape), not a text/plain 400
    strictPreflight: false
  })
}

export default fp(corsPlugin, { name: 'mj-cors', fastify: '5.x' })
