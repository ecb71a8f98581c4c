import type { FastifyInstance } from 'fastify'

/**
 * midjourney-proxy's mode prefixes: `/mj-fast/mj/...` runs the task in fast mode, and so on. Every /mj route is
 * also served under each, and forwarded upstream under the same prefix. The task cache is keyed by the id alone,
 * so a task fetched under one prefix is a HIT under another (one id is one task).
 */
export const MODE_PREFIXES: readonly string[] = ['/mj-fast', '/mj-relax', '/mj-turbo']

const PREFIX = `(?:${MODE_PREFIXES.join('|')})?`
/** A path of the gateway's API: /mj or /mj/…, bare or under a mode prefix (query ignored). */
export const API_PATH = new RegExp(`^${PREFIX}/mj(?:[/?]|$)`)
/** A path of a task's routes (/mj/task/…, bare or under a mode prefix): every parameter there is a task id. */
export const TASK_PATH = new RegExp(`^${PREFIX}/mj/task/`)

/** Registers `routes` at /mj/... and again under every mode prefix; a route forwards under its scope's `prefix`. */
export async function withModePrefixes(app: FastifyInstance, routes: (scope: FastifyInstance) => Promise<void>): Promise<void> {
  await app.register(routes)
  for (const prefix of MODE_PREFIXES) await app.register(routes, { prefix })
}
