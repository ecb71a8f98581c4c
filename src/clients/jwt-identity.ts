import { createVerifier } from 'fast-jwt'
import type { JwtConfig } from '../config.js'

/** A JWT looks like three base64url parts; anything else is not worth a verification. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
/** `sub` becomes part of the client's name in logs and owner records: printable and short */
const SUB_PATTERN = /^[\x21-\x7e]{1,128}$/
/** verified tokens remembered (fast-jwt drops an entry when its token expires), so a poller's hit costs a lookup */
const CACHE_SIZE = 10_000

/**
 * Verifies per-user JWTs (CONTRACT §9): the signature with the one configured key and algorithm (so `alg: none`
 * and algorithm swaps fail), `exp` required, audience and issuer when configured, and a lifetime no longer than
 * CLIENT_JWT_MAX_TTL_SECONDS. Returns the `sub` of a good token, else undefined; never throws, never logs.
 */
export class JwtIdentities {
  private readonly verify: (token: string) => unknown
  private readonly maxTtlSeconds: number

  constructor(cfg: JwtConfig) {
    this.maxTtlSeconds = cfg.maxTtlSeconds
    this.verify = createVerifier({
      key: cfg.key,
      algorithms: [...cfg.algorithms],
      // fast-jwt checks aud/iss only when present: configured, they are required
      requiredClaims: ['exp', 'sub', ...(cfg.audience === undefined ? [] : ['aud']), ...(cfg.issuer === undefined ? [] : ['iss'])],
      ...(cfg.audience === undefined ? {} : { allowedAud: cfg.audience }),
      ...(cfg.issuer === undefined ? {} : { allowedIss: cfg.issuer }),
      cache: CACHE_SIZE
    })
  }

  /** the token's subject when it is a good token, else undefined */
  subject(token: string, nowMs = Date.now()): string | undefined {
    if (!JWT_SHAPE.test(token)) return undefined
    let payload: unknown
    try {
      payload = this.verify(token)
    } catch {
      return undefined
    }
    const { sub, exp, iat } = payload as { sub: unknown; exp: unknown; iat?: unknown }
    if (typeof sub !== 'string' || !SUB_PATTERN.test(sub) || typeof exp !== 'number') return undefined
    // the lifetime as issued; without `iat`, or with one in the future (which would hide a long life), from now
    const now = nowMs / 1000
    const from = typeof iat === 'number' ? Math.min(iat, now) : now
    if (exp - from > this.maxTtlSeconds) return undefined
    return sub
  }
}
