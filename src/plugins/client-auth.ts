import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import type { ClientIdentity, ClientKeyTable } from '../clients/client-keys.js'
import { UnauthorizedError } from '../http/errors.js'
import { credentialHeaders } from '../http/query-token.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** memo of clientOf(): null until first asked */
    mjClient: ClientIdentity | null
  }
  interface FastifyInstance {
    /** re-reads CLIENT_KEYS_FILE (main.ts calls it on SIGHUP); logs how many tokens, never which */
    reloadClientKeys(): ReloadResult
  }
}

export interface ReloadResult {
  ok: boolean
  tokens: number
}

export interface AuthPluginOptions {
  table: ClientKeyTable
}

/** Who sent the request, worked out once and shared by the rate limit (onRequest) and the auth check (preParsing). */
export function clientOf(request: FastifyRequest, table: ClientKeyTable): ClientIdentity {
  return (request.mjClient ??= table.identify(credentialHeaders(request)))
}

export function reloadClientKeys(table: ClientKeyTable, log: FastifyBaseLogger): ReloadResult {
  if (!table.reloadable) {
    log.info({ tokens: table.size }, 'client tokens: no CLIENT_KEYS_FILE to re-read')
    return { ok: true, tokens: table.size }
  }
  try {
    const tokens = table.reload()
    log.info({ tokens }, 'client tokens reloaded')
    if (tokens === 0) log.warn('no client tokens loaded: every /mj request is refused (401) until tokens are added')
    return { ok: true, tokens }
  } catch (err) {
    // ConfigError messages name the variable and the problem, never a token.
    log.error({ reason: (err as Error).message, tokens: table.size }, 'client token reload failed; the previous tokens stay')
    return { ok: false, tokens: table.size }
  }
}

/**
 * Client tokens on every route of the scope it is registered in. It runs in preParsing, after the rate limit
 * (onRequest), so refused requests still count against their IP, and before the body is read and before any
 * cache or upstream work.
 */
async function authPlugin(app: FastifyInstance, { table }: AuthPluginOptions): Promise<void> {
  app.decorateRequest('mjClient', null)
  if (!table.enabled) return
  app.addHook('preParsing', (request, _reply, _payload, done) => {
    done(clientOf(request, table).authorized ? undefined : new UnauthorizedError())
  })
}

export default fp(authPlugin, { name: 'mj-auth', fastify: '5.x' })
