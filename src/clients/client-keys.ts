import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingHttpHeaders } from 'node:http'
import { ConfigError, identitiesConfigured, parseClientKeys, type ClientKey, type Config } from '../config.js'
import { JwtIdentities } from './jwt-identity.js'

/** Who sent a request, as logs, rate limits, ownership and metrics see it: never the token itself. */
export interface ClientIdentity {
  /** a valid token was presented, or client auth is off */
  readonly authorized: boolean
  /** the token's configured name (or fingerprint), or `jwt:{sub}`; undefined when no valid token was presented */
  readonly name: string | undefined
  /** whom this client's tasks belong to (CONTRACT §9): its name, or `anonymous` without one */
  readonly owner: string
  /** `name:token:all`: sees every task */
  readonly all: boolean
  /** the `client` label of the per-client metrics: the configured name, `jwt` for every JWT client, or `anonymous` */
  readonly label: string
}

export const ANONYMOUS_NAME = 'anonymous'
export const ANONYMOUS: ClientIdentity = Object.freeze({ authorized: false, name: undefined, owner: ANONYMOUS_NAME, all: false, label: ANONYMOUS_NAME })
const OPEN: ClientIdentity = Object.freeze({ authorized: true, name: undefined, owner: ANONYMOUS_NAME, all: false, label: ANONYMOUS_NAME })
/** the label every JWT client shares (one series for all users, not one per user) */
export const JWT_LABEL = 'jwt'

function jwtIdentity(sub: string): ClientIdentity {
  const name = `jwt:${sub}`
  return { authorized: true, name, owner: name, all: false, label: JWT_LABEL }
}

interface Entry {
  readonly digest: Buffer
  readonly identity: ClientIdentity
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** The credential a client presents: `Authorization: Bearer {token}`, else `mj-api-secret: {token}`. */
export function presentedTokens(headers: IncomingHttpHeaders): string[] {
  const tokens: string[] = []
  const auth = headers.authorization
  // The scheme is case-insensitive (RFC 9110 §11.1).
  if (auth !== undefined && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') {
    const token = auth.slice(7).trim()
    if (token !== '') tokens.push(token)
  }
  const secret = headers['mj-api-secret']
  if (typeof secret === 'string' && secret.trim() !== '') tokens.push(secret.trim())
  return tokens
}

/**
 * The client tokens, held only as SHA-256 digests. A presented token is hashed and compared with every
 * digest by timingSafeEqual, with no early exit, so the time taken says nothing about how close a guess was.
 */
export class ClientKeyTable {
  /** Fixed at start-up: a gateway started with tokens stays closed even if a reload leaves none. */
  readonly enabled: boolean
  private entries: readonly Entry[] = []
  private readonly inline: readonly ClientKey[]
  private readonly file: string | undefined
  private readonly jwt: JwtIdentities | undefined

  constructor(config: Pick<Config, 'clientKeys' | 'clientKeysInline' | 'clientKeysFile' | 'jwt'>) {
    this.file = config.clientKeysFile
    this.inline = config.clientKeysInline ?? (this.file === undefined ? config.clientKeys : [])
    this.enabled = identitiesConfigured(config)
    this.jwt = config.jwt === undefined ? undefined : new JwtIdentities(config.jwt)
    this.replace(config.clientKeys)
  }

  /** CLIENT_KEYS_FILE is set, so reload() has something to re-read */
  get reloadable(): boolean {
    return this.file !== undefined
  }

  /** how many tokens are loaded */
  get size(): number {
    return this.entries.length
  }

  /** The identity behind the request's credentials; ANONYMOUS when none is valid. */
  identify(headers: IncomingHttpHeaders): ClientIdentity {
    if (!this.enabled) return OPEN
    let found: ClientIdentity = ANONYMOUS
    const tokens = presentedTokens(headers)
    for (const token of tokens) {
      const d = digest(token)
      for (const entry of this.entries) {
        if (timingSafeEqual(d, entry.digest) && found === ANONYMOUS) found = entry.identity
      }
    }
    if (found !== ANONYMOUS || this.jwt === undefined) return found
    // a static token wins; else the first good JWT
    for (const token of tokens) {
      const sub = this.jwt.subject(token)
      if (sub !== undefined) return jwtIdentity(sub)
    }
    return ANONYMOUS
  }

  /**
   * Re-reads CLIENT_KEYS_FILE (CLIENT_KEYS itself cannot change in a running process) and swaps the table
   * in one step. On any error the old table stays and a ConfigError (which never quotes a token) is thrown.
   */
  reload(): number {
    if (this.file === undefined) return this.entries.length
    let text: string
    try {
      text = readFileSync(this.file, 'utf8')
    } catch (err) {
      throw new ConfigError(`CLIENT_KEYS_FILE: cannot read ${this.file} (${String((err as NodeJS.ErrnoException).code)})`)
    }
    this.replace([...this.inline, ...parseClientKeys(text)])
    return this.entries.length
  }

  private replace(keys: readonly ClientKey[]): void {
    this.entries = keys.map((k) => ({
      digest: digest(k.token),
      identity: Object.freeze({ authorized: true, name: k.name, owner: k.name, all: k.all === true, label: k.name })
    }))
  }
}
