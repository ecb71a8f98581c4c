import type { FastifyInstance } from 'fastify'
import { RouteNotFoundError } from '../http/errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** a catch-all: counted in metrics as `unmatched`, like any path no route knows */
    unrouted?: boolean
  }
}

/**
 * Every other path under /mj/ (any method), inside the /mj scope so the same hooks run for it as for a real
 * route: CORS, shedding, the rate limit and, with client identities, the token check. Without a valid token every
 * /mj/* path answers 401 and counts against the limit alike, so nobody learns which routes exist by probing.
 * With one it is the 404 of any unknown path, answered before the body is read (find-my-way prefers every
 * static and parametric route to this wildcard).
 */
export async function unroutedRoutes(app: FastifyInstance): Promise<void> {
  const opts = {
    config: { unrouted: true },
    // after the scope's own preParsing hooks (the token check), before the body would be read
    preParsing: (request: { method: string }, _reply: unknown, _payload: unknown, done: (err: Error) => void) => done(new RouteNotFoundError(request.method)),
    /* c8 ignore next -- preParsing always ends the request first */
    handler: () => undefined
  }
  app.all('/mj', opts)
  app.all('/mj/*', opts)
}
