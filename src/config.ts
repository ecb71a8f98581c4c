import { createHash, createHmac, createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { envSchema } from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { parsePassthroughRoutes } from './routes/passthrough-table.js'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const Int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  Type.Integer({ default: def, minimum: min, maximum: max })

const EnvSchema = Type.Object({
  PORT: Int(8080, 0, 65535),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1 }),
  UPSTREAM_BASE_URL: Type.String({ default: 'https://api.quickrouter.ai' }),
  UPSTREAM_API_KEY: Type.Optional(Type.String()),
  UPSTREAM_API_KEY_FILE: Type.Optional(Type.String()),
  UPSTREAM_AUTH_STYLE: Type.Union([Type.Literal('bearer'), Type.Literal('mj-api-secret')], { default: 'bearer' }),
  UPSTREAM_CA_FILE: Type.Optional(Type.String()),
  UPSTREAM_TIMEOUT_MS: Int(10000, 1),
  UPSTREAM_RETRIES: Int(2, 0, 10),
  UPSTREAM_MAX_BODY_BYTES: Int(10485760, 1),
  CACHE_MAX_BYTES: Int(134217728, 1),
  CACHE_TTL_SECONDS: Int(3600, 1),
  CACHE_URL_EXPIRY_MARGIN_SECONDS: Int(300, 0),
  POLL_CACHE_MS: Int(1000, 0),
  STALE_IF_ERROR_SECONDS: Int(60, 0),
  CLIENT_KEYS: Type.String({ default: '' }),
  CLIENT_KEYS_FILE: Type.Optional(Type.String()),
  RATE_LIMIT_PER_MINUTE: Int(600, 0),
  CORS_ORIGINS: Type.String({ default: '' }),
  REDIS_URL: Type.String({ default: '' }),
  METRICS_TOKEN: Type.String({ default: '' }),
  TRUST_PROXY: Type.String({ default: 'false' }),
  LOG_LEVEL: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)), { default: 'info' }),
  PASSTHROUGH: Type.Union([Type.Literal('auto'), Type.Literal('on'), Type.Literal('off')], { default: 'auto' }),
  SUBMIT_MAX_BODY_BYTES: Int(20971520, 1),
  ALLOW_NOTIFY_HOOK: Type.Boolean({ default: false }),
  EVENT_LOOP_MAX_DELAY_MS: Int(1000, 0),
  // tenancy (CONTRACT §9)
  CLIENT_JWT_SECRET: Type.Optional(Type.String()),
  CLIENT_JWT_PUBLIC_KEY_FILE: Type.Optional(Type.String()),
  CLIENT_JWT_AUDIENCE: Type.Optional(Type.String()),
  CLIENT_JWT_ISSUER: Type.Optional(Type.String()),
  CLIENT_JWT_MAX_TTL_SECONDS: Int(86400, 1),
  TASK_OWNERSHIP: Type.Union([Type.Literal('auto'), Type.Literal('on'), Type.Literal('off')], { default: 'auto' }),
  OWNERLESS_TASKS: Type.Union([Type.Literal('hidden'), Type.Literal('visible')], { default: 'hidden' }),
  OWNERSHIP_TTL_DAYS: Int(30, 1, 3650),
  CLIENT_MAX_INFLIGHT: Int(32, 1),
  SUBMIT_INFLIGHT_MAX_BYTES: Int(268435456, 1),
  SUBMIT_QUOTA_PER_DAY: Int(0, 0),
  HIT_LANE: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on' }),
  PASSTHROUGH_ROUTES: Type.String({ default: '' }),
  DATA_DIR: Type.String({ default: './data', minLength: 1 }),
  PUBLIC_URL: Type.String({ default: '' }),
  EVENTS_MAX_SUBSCRIBERS: Int(10000, 1),
  WATCH_IDLE_SECONDS: Int(30, 0),
  REFRESH_INTERVAL_MS: Int(1000, 100, 3_600_000),
  IMAGE_HOSTS: Type.String({ default: 'cdn.discordapp.com,media.discordapp.net' }),
  IMAGE_FETCH_CONCURRENCY: Int(4, 1, 256),
  IMAGE_MAX_BYTES: Int(33554432, 1),
  IMAGE_STORE_MAX_BYTES: Int(2147483648, 1),
  IMAGE_SIGNING_KEY: Type.Optional(Type.String()),
  IMAGE_SIGNED_URL_TTL_SECONDS: Int(604800, 60),
  IMAGE_REWRITE: Type.Union([Type.Literal('off'), Type.Literal('on')], { default: 'off' })
})
type Env = Static<typeof EnvSchema>

export interface ClientKey {
  /** what logs and rate limits see: the configured name, else a fingerprint */
  readonly name: string
  readonly token: string
  /** `name:token:all`: this client sees every task (CONTRACT §9) */
  readonly all?: boolean
}

/** JWT client identities (CONTRACT §9): one of an HS256 secret or a PEM public key. */
export interface JwtConfig {
  readonly key: string
  readonly algorithms: readonly ('HS256' | 'RS256' | 'ES256')[]
  readonly audience?: string
  readonly issuer?: string
  readonly maxTtlSeconds: number
}

export interface Config {
  readonly port: number
  readonly host: string
  readonly upstream: {
    readonly baseUrl: string
    readonly apiKey: string
    /** sha256 prefix of the key: namespaces caches and stands in for the key in logs */
    readonly keyFingerprint: string
    readonly authStyle: 'bearer' | 'mj-api-secret'
    readonly ca?: string
    readonly timeoutMs: number
    readonly retries: number
    readonly maxBodyBytes: number
  }
  readonly cache: {
    readonly maxBytes: number
    readonly ttlSeconds: number
    readonly urlExpiryMarginSeconds: number
    readonly pollCacheMs: number
    readonly staleIfErrorSeconds: number
  }
  readonly clientKeys: readonly ClientKey[]
  /** the CLIENT_KEYS part of clientKeys: kept when CLIENT_KEYS_FILE is re-read (SIGHUP); absent = none */
  readonly clientKeysInline?: readonly ClientKey[]
  readonly clientKeysFile?: string
  readonly rateLimitPerMinute: number
  readonly corsOrigins: readonly string[]
  readonly redisUrl: string
  readonly metricsToken: string
  readonly trustProxy: boolean | number | string
  readonly logLevel: (typeof LOG_LEVELS)[number]
  readonly passthrough: 'auto' | 'on' | 'off'
  readonly submitMaxBodyBytes: number
  readonly allowNotifyHook: boolean
  readonly eventLoopMaxDelayMs: number
  /** `off` (a diagnostic): every request goes through Fastify, none through the hit lane */
  readonly hitLane: 'on' | 'off'
  /** PASSTHROUGH_ROUTES, else the default list (routes/passthrough-table.ts); `{id}` written as `:id` */
  readonly passthroughRoutes: readonly string[]
  /** DATA_DIR: where embedded stores (the image archive among them) keep their files */
  readonly dataDir: string
  /** PUBLIC_URL without a trailing slash; '' = unset */
  readonly publicUrl: string
  /** docs/push.md: server-sent events and the refresher */
  readonly push: {
    readonly maxSubscribers: number
    readonly watchIdleSeconds: number
    readonly refreshIntervalMs: number
  }
  readonly images: {
    /** lowercase host names images may be fetched from (and redirected to) */
    readonly hosts: readonly string[]
    readonly fetchConcurrency: number
    readonly maxBytes: number
    readonly storeMaxBytes: number
    /** IMAGE_SIGNING_KEY, else a key derived from the upstream key */
    readonly signingKey: string
    /** true when signingKey came from IMAGE_SIGNING_KEY */
    readonly signingKeySet: boolean
    readonly signedUrlTtlSeconds: number
    readonly rewrite: boolean
  }
  /** CLIENT_JWT_*: absent when JWT identities are off */
  readonly jwt?: JwtConfig
  readonly ownership: {
    /** TASK_OWNERSHIP resolved: auto = on exactly when client identities are configured */
    readonly enabled: boolean
    readonly ownerless: 'hidden' | 'visible'
    readonly ttlDays: number
  }
  readonly fairness: {
    readonly clientMaxInflight: number
    readonly submitInflightMaxBytes: number
    /** 0 = off */
    readonly submitQuotaPerDay: number
  }
}

/** Client tokens or JWT identities are configured, so requests carry an identity (else everyone is anonymous). */
export function identitiesConfigured(config: Pick<Config, 'clientKeys' | 'clientKeysFile' | 'jwt'>): boolean {
  return config.clientKeys.length > 0 || config.clientKeysFile !== undefined || config.jwt !== undefined
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12)
}

function readSecretFile(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (err) {
    throw new ConfigError(`${variable}: cannot read ${path} (${String((err as NodeJS.ErrnoException).code)})`)
  }
}

const ALL_SUFFIX = ':all'

/**
 * `token`, `name:token` or `name:token:all`, separated by commas or newlines; blank lines and `#` comments ignored.
 * `:all` is read as the marker only after a name (a bare token may end in anything).
 */
export function parseClientKeys(text: string): ClientKey[] {
  const keys: ClientKey[] = []
  for (const raw of text.split(/[,\n]/)) {
    const item = raw.trim()
    if (item === '' || item.startsWith('#')) continue
    const colon = item.indexOf(':')
    let token = colon === -1 ? item : item.slice(colon + 1).trim()
    const all = colon !== -1 && token.endsWith(ALL_SUFFIX)
    if (all) token = token.slice(0, -ALL_SUFFIX.length).trim()
    const name = colon === -1 ? `client-${fingerprint(token).slice(0, 8)}` : item.slice(0, colon).trim()
    if (token === '' || name === '') throw new ConfigError('CLIENT_KEYS: an entry has an empty name or token')
    keys.push(all ? { name, token, all } : { name, token })
  }
  return keys
}

const JWT_MIN_SECRET_LENGTH = 32

/** CLIENT_JWT_*: an HS256 secret or a PEM public key (RS256 for RSA, ES256 for a P-256 EC key), never both. */
function loadJwtConfig(env: Env): JwtConfig | undefined {
  const secret = env.CLIENT_JWT_SECRET
  const file = env.CLIENT_JWT_PUBLIC_KEY_FILE
  if (secret === undefined && file === undefined) return undefined
  if (secret !== undefined && file !== undefined) {
    throw new ConfigError('CLIENT_JWT_SECRET and CLIENT_JWT_PUBLIC_KEY_FILE: set one of them, not both')
  }
  const checks = {
    maxTtlSeconds: env.CLIENT_JWT_MAX_TTL_SECONDS,
    ...(env.CLIENT_JWT_AUDIENCE === undefined ? {} : { audience: env.CLIENT_JWT_AUDIENCE }),
    ...(env.CLIENT_JWT_ISSUER === undefined ? {} : { issuer: env.CLIENT_JWT_ISSUER })
  }
  if (secret !== undefined) {
    if (secret.length < JWT_MIN_SECRET_LENGTH) {
      throw new ConfigError(`CLIENT_JWT_SECRET: must be at least ${JWT_MIN_SECRET_LENGTH} characters (got ${secret.length})`)
    }
    return { key: secret, algorithms: ['HS256'], ...checks }
  }
  const pem = readSecretFile('CLIENT_JWT_PUBLIC_KEY_FILE', file as string)
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch {
    throw new ConfigError(`CLIENT_JWT_PUBLIC_KEY_FILE: ${file} holds no PEM public key`)
  }
  if (key.asymmetricKeyType === 'rsa') return { key: pem, algorithms: ['RS256'], ...checks }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return { key: pem, algorithms: ['ES256'], ...checks }
  }
  throw new ConfigError(`CLIENT_JWT_PUBLIC_KEY_FILE: ${file} must hold an RSA or P-256 EC public key`)
}

export function loadClientKeys(env: { CLIENT_KEYS?: string | undefined; CLIENT_KEYS_FILE?: string | undefined }): ClientKey[] {
  const keys = parseClientKeys(env.CLIENT_KEYS ?? '')
  if (env.CLIENT_KEYS_FILE) keys.push(...parseClientKeys(readSecretFile('CLIENT_KEYS_FILE', env.CLIENT_KEYS_FILE)))
  return keys
}

function parseBaseUrl(value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(`UPSTREAM_BASE_URL: not a valid URL: ${JSON.stringify(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`UPSTREAM_BASE_URL: must be http or https, got ${url.protocol}`)
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username || url.password) {
    throw new ConfigError('UPSTREAM_BASE_URL: must be an origin only (scheme, host, port), no path, query or credentials')
  }
  return url.origin
}

const PROXY_ADDR_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** What proxy-addr (Fastify's trustProxy) accepts: an address, address/prefix, address/netmask, or a named range. */
function isTrustedProxyEntry(item: string): boolean {
  if (PROXY_ADDR_NAMES.has(item)) return true
  const [addr = '', mask, ...rest] = item.split('/')
  if (isIP(addr) === 0 || rest.length > 0) return false
  return mask === undefined || /^\d{1,3}$/.test(mask) || isIP(mask) !== 0
}

function parseTrustProxy(value: string): boolean | number | string {
  const v = value.trim().toLowerCase()
  if (v === 'true') return true
  if (v === 'false' || v === '') return false
  if (/^\d+$/.test(v)) return Number(v)
  if (v.split(',').every((item) => isTrustedProxyEntry(item.trim()))) return value.trim()
  throw new ConfigError(`TRUST_PROXY: expected true, false, a hop count or a list of addresses, got ${JSON.stringify(value)}`)
}

function parseOrigins(value: string): string[] {
  return value
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '')
    .map((o) => {
      if (o === '*') throw new ConfigError('CORS_ORIGINS: "*" is not allowed; list exact origins')
      let url: URL
      try {
        url = new URL(o)
      } catch {
        throw new ConfigError(`CORS_ORIGINS: not a valid origin: ${JSON.stringify(o)}`)
      }
      if (url.origin !== o.replace(/\/$/, '')) throw new ConfigError(`CORS_ORIGINS: not an origin (scheme://host[:port]): ${JSON.stringify(o)}`)
      return url.origin
    })
}

/** PUBLIC_URL: an http(s) origin with an optional path, kept without a trailing slash; '' = unset. */
function parsePublicUrl(value: string): string {
  if (value === '') return ''
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(`PUBLIC_URL: not a valid URL: ${JSON.stringify(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`PUBLIC_URL: must be http or https, got ${url.protocol}`)
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError('PUBLIC_URL: must be an origin with an optional path, no query, fragment or credentials')
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '')
}

/** IMAGE_HOSTS: comma-separated host names (no scheme, port or path), compared in lower case. */
function parseImageHosts(value: string): string[] {
  const hosts = value
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '')
  for (const h of hosts) {
    if (!/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/.test(h)) {
      throw new ConfigError(`IMAGE_HOSTS: not a host name: ${JSON.stringify(h)} (list names like cdn.example.com, no scheme, port or path)`)
    }
  }
  return hosts
}

/** The URL is never echoed: it may hold a password. */
function checkRedisUrl(value: string): void {
  if (!/^rediss?:\/\//.test(value)) throw new ConfigError('REDIS_URL: must start with redis:// or rediss://')
  try {
    const url = new URL(value)
    decodeURIComponent(url.username)
    decodeURIComponent(url.password)
  } catch {
    throw new ConfigError('REDIS_URL: not a valid URL (percent-encode special characters in the password)')
  }
}

interface AjvIssue {
  instancePath: string
  keyword: string
  message?: string
  params: { allowedValue?: unknown }
}

/** env-schema always throws with ajv's `errors`; one line naming the first bad variable and its value. */
function formatAjvError(err: unknown, data: Record<string, string>): string {
  const issues = (err as { errors: AjvIssue[] }).errors
  const first = issues[0] as AjvIssue
  const variable = first.instancePath.replace(/^\//, '')
  // A union of literals fails once per literal: list them all, not just the first ("must be equal to constant").
  const allowed = issues.filter((i) => i.instancePath === first.instancePath && i.keyword === 'const').map((i) => i.params.allowedValue)
  const what = allowed.length > 0 ? `must be one of ${allowed.join(', ')}` : first.message
  return `${variable}: ${what}, got ${JSON.stringify(data[variable])}`
}

/** Reads and validates the environment once. Throws ConfigError with one line naming the variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings mean "unset", as in most deploy tools' env files.
  const data: Record<string, string> = {}
  for (const [k, v] of Object.entries(source)) if (v !== undefined && v !== '') data[k] = v

  let env: Env
  try {
    env = envSchema<Env>({ schema: EnvSchema, data, dotenv: false })
  } catch (err) {
    throw new ConfigError(formatAjvError(err, data))
  }

  let apiKey = env.UPSTREAM_API_KEY
  if (!apiKey && env.UPSTREAM_API_KEY_FILE) apiKey = readSecretFile('UPSTREAM_API_KEY_FILE', env.UPSTREAM_API_KEY_FILE)
  if (!apiKey) {
    throw new ConfigError('UPSTREAM_API_KEY is not set: set UPSTREAM_API_KEY (or UPSTREAM_API_KEY_FILE), or try `npm run demo`')
  }
  if (!/^[\x21-\x7e]+$/.test(apiKey)) throw new ConfigError('UPSTREAM_API_KEY: must be printable ASCII without spaces (it goes into an HTTP header)')

  const clientKeysInline = parseClientKeys(env.CLIENT_KEYS)
  const ca = env.UPSTREAM_CA_FILE ? readSecretFile('UPSTREAM_CA_FILE', env.UPSTREAM_CA_FILE) : undefined
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`UPSTREAM_CA_FILE: ${env.UPSTREAM_CA_FILE} holds no PEM certificate`)
  }

  if (env.REDIS_URL) checkRedisUrl(env.REDIS_URL)
  const clientKeys = loadClientKeys(env)
  const jwt = loadJwtConfig(env)
  const publicUrl = parsePublicUrl(env.PUBLIC_URL)
  if (env.IMAGE_REWRITE === 'on' && publicUrl === '') throw new ConfigError('IMAGE_REWRITE: on needs PUBLIC_URL (the origin clients reach the gateway at)')

  const config: Config = {
    port: env.PORT,
    host: env.HOST,
    upstream: {
      baseUrl: parseBaseUrl(env.UPSTREAM_BASE_URL),
      apiKey,
      keyFingerprint: fingerprint(apiKey),
      authStyle: env.UPSTREAM_AUTH_STYLE,
      ...(ca === undefined ? {} : { ca }),
      timeoutMs: env.UPSTREAM_TIMEOUT_MS,
      retries: env.UPSTREAM_RETRIES,
      maxBodyBytes: env.UPSTREAM_MAX_BODY_BYTES
    },
    cache: {
      maxBytes: env.CACHE_MAX_BYTES,
      ttlSeconds: env.CACHE_TTL_SECONDS,
      urlExpiryMarginSeconds: env.CACHE_URL_EXPIRY_MARGIN_SECONDS,
      pollCacheMs: env.POLL_CACHE_MS,
      staleIfErrorSeconds: env.STALE_IF_ERROR_SECONDS
    },
    clientKeys,
    clientKeysInline,
    ...(env.CLIENT_KEYS_FILE === undefined ? {} : { clientKeysFile: env.CLIENT_KEYS_FILE }),
    rateLimitPerMinute: env.RATE_LIMIT_PER_MINUTE,
    corsOrigins: parseOrigins(env.CORS_ORIGINS),
    redisUrl: env.REDIS_URL,
    metricsToken: env.METRICS_TOKEN,
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    logLevel: env.LOG_LEVEL,
    passthrough: env.PASSTHROUGH,
    submitMaxBodyBytes: env.SUBMIT_MAX_BODY_BYTES,
    allowNotifyHook: env.ALLOW_NOTIFY_HOOK,
    eventLoopMaxDelayMs: env.EVENT_LOOP_MAX_DELAY_MS,
    ...(jwt === undefined ? {} : { jwt }),
    ownership: {
      enabled: env.TASK_OWNERSHIP === 'on' || (env.TASK_OWNERSHIP === 'auto' && identitiesConfigured({ clientKeys, clientKeysFile: env.CLIENT_KEYS_FILE, jwt })),
      ownerless: env.OWNERLESS_TASKS,
      ttlDays: env.OWNERSHIP_TTL_DAYS
    },
    fairness: {
      clientMaxInflight: env.CLIENT_MAX_INFLIGHT,
      submitInflightMaxBytes: env.SUBMIT_INFLIGHT_MAX_BYTES,
      submitQuotaPerDay: env.SUBMIT_QUOTA_PER_DAY
    },
    hitLane: env.HIT_LANE,
    passthroughRoutes: passthroughRoutesOf(env.PASSTHROUGH_ROUTES),
    dataDir: env.DATA_DIR,
    publicUrl,
    push: {
      maxSubscribers: env.EVENTS_MAX_SUBSCRIBERS,
      watchIdleSeconds: env.WATCH_IDLE_SECONDS,
      refreshIntervalMs: env.REFRESH_INTERVAL_MS
    },
    images: {
      hosts: parseImageHosts(env.IMAGE_HOSTS),
      fetchConcurrency: env.IMAGE_FETCH_CONCURRENCY,
      maxBytes: env.IMAGE_MAX_BYTES,
      storeMaxBytes: env.IMAGE_STORE_MAX_BYTES,
      signingKey: env.IMAGE_SIGNING_KEY ?? createHmac('sha256', apiKey).update('mj-gateway image url signing').digest('hex'),
      signingKeySet: env.IMAGE_SIGNING_KEY !== undefined,
      signedUrlTtlSeconds: env.IMAGE_SIGNED_URL_TTL_SECONDS,
      rewrite: env.IMAGE_REWRITE === 'on'
    }
  }
  return deepFreeze(config)
}

function passthroughRoutesOf(value: string): string[] {
  try {
    return parsePassthroughRoutes(value)
  } catch (err) {
    throw new ConfigError(`PASSTHROUGH_ROUTES: ${(err as Error).message}`)
  }
}

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (v !== null && typeof v === 'object') deepFreeze(v as object)
  return Object.freeze(o)
}

/** The effective configuration, fit for a log line: every secret a fingerprint or [redacted]. */
export function describeConfig(c: Config): Record<string, unknown> {
  return {
    PORT: c.port,
    HOST: c.host,
    UPSTREAM_BASE_URL: c.upstream.baseUrl,
    UPSTREAM_API_KEY: `[redacted sha256:${c.upstream.keyFingerprint}]`,
    UPSTREAM_AUTH_STYLE: c.upstream.authStyle,
    UPSTREAM_CA_FILE: c.upstream.ca === undefined ? null : 'set',
    UPSTREAM_TIMEOUT_MS: c.upstream.timeoutMs,
    UPSTREAM_RETRIES: c.upstream.retries,
    UPSTREAM_MAX_BODY_BYTES: c.upstream.maxBodyBytes,
    CACHE_MAX_BYTES: c.cache.maxBytes,
    CACHE_TTL_SECONDS: c.cache.ttlSeconds,
    CACHE_URL_EXPIRY_MARGIN_SECONDS: c.cache.urlExpiryMarginSeconds,
    POLL_CACHE_MS: c.cache.pollCacheMs,
    STALE_IF_ERROR_SECONDS: c.cache.staleIfErrorSeconds,
    CLIENT_KEYS: `[redacted: ${c.clientKeys.length} token(s)]`,
    CLIENT_KEYS_FILE: c.clientKeysFile ?? null,
    RATE_LIMIT_PER_MINUTE: c.rateLimitPerMinute,
    CORS_ORIGINS: c.corsOrigins,
    REDIS_URL: c.redisUrl === '' ? null : redactUrl(c.redisUrl),
    METRICS_TOKEN: c.metricsToken === '' ? null : '[redacted]',
    TRUST_PROXY: c.trustProxy,
    LOG_LEVEL: c.logLevel,
    PASSTHROUGH: c.passthrough,
    SUBMIT_MAX_BODY_BYTES: c.submitMaxBodyBytes,
    ALLOW_NOTIFY_HOOK: c.allowNotifyHook,
    EVENT_LOOP_MAX_DELAY_MS: c.eventLoopMaxDelayMs,
    CLIENT_JWT_SECRET: c.jwt?.algorithms[0] === 'HS256' ? '[redacted]' : null,
    CLIENT_JWT_PUBLIC_KEY_FILE: c.jwt !== undefined && c.jwt.algorithms[0] !== 'HS256' ? `set (${c.jwt.algorithms.join(', ')})` : null,
    CLIENT_JWT_AUDIENCE: c.jwt?.audience ?? null,
    CLIENT_JWT_ISSUER: c.jwt?.issuer ?? null,
    CLIENT_JWT_MAX_TTL_SECONDS: c.jwt?.maxTtlSeconds ?? null,
    TASK_OWNERSHIP: c.ownership.enabled ? 'on' : 'off',
    OWNERLESS_TASKS: c.ownership.ownerless,
    OWNERSHIP_TTL_DAYS: c.ownership.ttlDays,
    CLIENT_MAX_INFLIGHT: c.fairness.clientMaxInflight,
    SUBMIT_INFLIGHT_MAX_BYTES: c.fairness.submitInflightMaxBytes,
    SUBMIT_QUOTA_PER_DAY: c.fairness.submitQuotaPerDay,
    HIT_LANE: c.hitLane,
    PASSTHROUGH_ROUTES: c.passthroughRoutes,
    DATA_DIR: c.dataDir,
    PUBLIC_URL: c.publicUrl === '' ? null : c.publicUrl,
    EVENTS_MAX_SUBSCRIBERS: c.push.maxSubscribers,
    WATCH_IDLE_SECONDS: c.push.watchIdleSeconds,
    REFRESH_INTERVAL_MS: c.push.refreshIntervalMs,
    IMAGE_HOSTS: c.images.hosts,
    IMAGE_FETCH_CONCURRENCY: c.images.fetchConcurrency,
    IMAGE_MAX_BYTES: c.images.maxBytes,
    IMAGE_STORE_MAX_BYTES: c.images.storeMaxBytes,
    IMAGE_SIGNING_KEY: c.images.signingKeySet ? '[redacted]' : '[derived from the upstream key]',
    IMAGE_SIGNED_URL_TTL_SECONDS: c.images.signedUrlTtlSeconds,
    IMAGE_REWRITE: c.images.rewrite ? 'on' : 'off'
  }
}

/** REDIS_URL parsed at load (checkRedisUrl), with its credentials hidden. */
function redactUrl(raw: string): string {
  const u = new URL(raw)
  if (u.password) u.password = 'redacted'
  if (u.username && u.password === '') u.username = 'redacted'
  return u.toString()
}

/** Every environment variable the gateway reads (deploy files are tested against this list). */
export const ENV_VARIABLES: readonly string[] = Object.keys(EnvSchema.properties)
