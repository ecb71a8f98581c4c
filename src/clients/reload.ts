import type { FastifyBaseLogger } from 'fastify'
import type { ClientKeyTable } from './client-keys.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** re-reads CLIENT_KEYS_FILE (main.ts calls it on SIGHUP); logs how many tokens, never which */
    reloadClientKeys(): ReloadResult
  }
}

export interface ReloadResult {
  ok: boolean
  tokens: number
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
