import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, ENV_VARIABLES, describeConfig, fingerprint, loadClientKeys, loadConfig, parseClientKeys } from '../src/config.js'

const KEY = 'sk-config-test-0123456789abcdef'
const base = { UPSTREAM_API_KEY: KEY }

function tempDir(tt: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-config-'))
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The ConfigError a bad environment causes; fails the test when it loads. */
function configError(tt: Test, env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    tt.type(err, ConfigError)
    const message = (err as Error).message
    tt.notMatch(message, /\n/, 'one line')
    return message
  }
  tt.fail(`loaded: ${JSON.stringify(env)}`)
  return ''
}

t.test('docs/configuration.md §2–§7 defaults', async (t) => {
  const c = loadConfig(base)
  t.equal(c.port, 8080)
  t.equal(c.host, '0.0.0.0')
  t.equal(c.upstream.baseUrl, 'https://api.quickrouter.ai')
  t.equal(c.upstream.apiKey, KEY)
  t.equal(c.upstream.keyFingerprint, fingerprint(KEY))
  t.equal(c.upstream.authStyle, 'bearer')
  t.equal(c.upstream.ca, undefined)
  t.equal(c.upstream.timeoutMs, 10000)
  t.equal(c.upstream.retries, 2)
  t.equal(c.upstream.maxBodyBytes, 10485760)
  t.equal(c.cache.maxBytes, 134217728)
  t.equal(c.cache.ttlSeconds, 3600)
  t.equal(c.cache.urlExpiryMarginSeconds, 300)
  t.equal(c.cache.pollCacheMs, 1000)
  t.equal(c.cache.staleIfErrorSeconds, 60)
  t.same(c.clientKeys, [])
  t.equal(c.clientKeysFile, undefined)
  t.equal(c.rateLimitPerMinute, 600)
  t.same(c.corsOrigins, [])
  t.equal(c.redisUrl, '')
  t.equal(c.metricsToken, '')
  t.equal(c.trustProxy, false)
  t.equal(c.logLevel, 'info')
  t.equal(c.passthrough, 'auto')
  t.equal(c.submitMaxBodyBytes, 20971520)
  t.equal(c.allowNotifyHook, false)
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.upstream) && Object.isFrozen(c.cache), 'frozen')
})

t.test('docs/configuration.md §1 every variable is read, and empty strings mean unset', async (t) => {
  const c = loadConfig({
    ...base,
    PORT: '9000',
    HOST: '127.0.0.1',
    UPSTREAM_BASE_URL: 'http://relay.internal:8081/',
    UPSTREAM_AUTH_STYLE: 'mj-api-secret',
    UPSTREAM_TIMEOUT_MS: '300',
    UPSTREAM_RETRIES: '0',
    UPSTREAM_MAX_BODY_BYTES: '1000',
    CACHE_MAX_BYTES: '2000',
    CACHE_TTL_SECONDS: '5',
    CACHE_URL_EXPIRY_MARGIN_SECONDS: '0',
    POLL_CACHE_MS: '0',
    STALE_IF_ERROR_SECONDS: '0',
    RATE_LIMIT_PER_MINUTE: '0',
    CORS_ORIGINS: 'https://a.example, http://b.example:3000/',
    REDIS_URL: 'redis://127.0.0.1:6379',
    METRICS_TOKEN: 'mt',
    TRUST_PROXY: 'true',
    LOG_LEVEL: 'trace',
    PASSTHROUGH: 'on',
    SUBMIT_MAX_BODY_BYTES: '10',
    ALLOW_NOTIFY_HOOK: 'true',
    EVENT_LOOP_MAX_DELAY_MS: '0',
    CLIENT_KEYS: '',
    UPSTREAM_CA_FILE: ''
  })
  t.equal(c.port, 9000)
  t.equal(c.host, '127.0.0.1')
  t.equal(c.upstream.baseUrl, 'http://relay.internal:8081', 'origin only, trailing slash dropped')
  t.equal(c.upstream.authStyle, 'mj-api-secret')
  t.equal(c.upstream.timeoutMs, 300)
  t.equal(c.upstream.retries, 0)
  t.equal(c.upstream.maxBodyBytes, 1000)
  t.same(c.cache, { maxBytes: 2000, ttlSeconds: 5, urlExpiryMarginSeconds: 0, pollCacheMs: 0, staleIfErrorSeconds: 0 })
  t.equal(c.rateLimitPerMinute, 0)
  t.same(c.corsOrigins, ['https://a.example', 'http://b.example:3000'])
  t.equal(c.redisUrl, 'redis://127.0.0.1:6379')
  t.equal(c.metricsToken, 'mt')
  t.equal(c.trustProxy, true)
  t.equal(c.logLevel, 'trace')
  t.equal(c.passthrough, 'on')
  t.equal(c.submitMaxBodyBytes, 10)
  t.equal(c.allowNotifyHook, true)
  t.equal(c.eventLoopMaxDelayMs, 0)
  t.same(c.clientKeys, [])
  t.equal(c.upstream.ca, undefined)
  t.ok(ENV_VARIABLES.includes('UPSTREAM_API_KEY') && ENV_VARIABLES.includes('PORT') && ENV_VARIABLES.includes('LOG_LEVEL'))
})

t.test('docs/configuration.md §1 a bad value stops start-up with one line naming the variable', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['PORT', 'abc', /^PORT: .*integer.*"abc"/],
    ['PORT', '70000', /^PORT: /],
    ['PORT', '-1', /^PORT: /],
    ['UPSTREAM_TIMEOUT_MS', '0', /^UPSTREAM_TIMEOUT_MS: /],
    ['UPSTREAM_RETRIES', '1.5', /^UPSTREAM_RETRIES: /],
    ['UPSTREAM_MAX_BODY_BYTES', '-5', /^UPSTREAM_MAX_BODY_BYTES: /],
    ['CACHE_MAX_BYTES', '-1', /^CACHE_MAX_BYTES: .*>= 1/],
    ['CACHE_TTL_SECONDS', '-60', /^CACHE_TTL_SECONDS: /],
    ['CACHE_URL_EXPIRY_MARGIN_SECONDS', '-1', /^CACHE_URL_EXPIRY_MARGIN_SECONDS: /],
    ['POLL_CACHE_MS', 'soon', /^POLL_CACHE_MS: /],
    ['STALE_IF_ERROR_SECONDS', '-2', /^STALE_IF_ERROR_SECONDS: /],
    ['RATE_LIMIT_PER_MINUTE', '-1', /^RATE_LIMIT_PER_MINUTE: /],
    ['SUBMIT_MAX_BODY_BYTES', '0', /^SUBMIT_MAX_BODY_BYTES: /],
    ['EVENT_LOOP_MAX_DELAY_MS', 'x', /^EVENT_LOOP_MAX_DELAY_MS: /],
    ['UPSTREAM_BASE_URL', 'not a url', /^UPSTREAM_BASE_URL: not a valid URL/],
    ['UPSTREAM_BASE_URL', 'ftp://relay.example', /^UPSTREAM_BASE_URL: must be http or https/],
    ['UPSTREAM_BASE_URL', 'http://relay.example/v1', /^UPSTREAM_BASE_URL: must be an origin only/],
    ['UPSTREAM_BASE_URL', 'https://relay.example?x=1', /^UPSTREAM_BASE_URL: must be an origin only/],
    ['UPSTREAM_BASE_URL', 'https://relay.example/#frag', /^UPSTREAM_BASE_URL: must be an origin only/],
    ['UPSTREAM_BASE_URL', 'https://user:pw@relay.example', /^UPSTREAM_BASE_URL: must be an origin only/],
    ['UPSTREAM_AUTH_STYLE', 'basic', /^UPSTREAM_AUTH_STYLE: must be one of bearer, mj-api-secret, got "basic"$/],
    ['LOG_LEVEL', 'loud', /^LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"$/],
    ['PASSTHROUGH', 'maybe', /^PASSTHROUGH: must be one of auto, on, off/],
    ['ALLOW_NOTIFY_HOOK', 'maybe', /^ALLOW_NOTIFY_HOOK: /],
    ['TRUST_PROXY', 'yes', /^TRUST_PROXY: /],
    ['TRUST_PROXY', 'cafe', /^TRUST_PROXY: /],
    ['TRUST_PROXY', '10.0.0.1/8/9', /^TRUST_PROXY: /],
    ['TRUST_PROXY', '10.0.0.1/x', /^TRUST_PROXY: /],
    ['TRUST_PROXY', '10.0.0.1, junk', /^TRUST_PROXY: /],
    ['CORS_ORIGINS', '*', /^CORS_ORIGINS: "\*" is not allowed/],
    ['CORS_ORIGINS', 'https://a.example,*', /^CORS_ORIGINS: /],
    ['CORS_ORIGINS', 'not an origin', /^CORS_ORIGINS: not a valid origin/],
    ['CORS_ORIGINS', 'https://a.example/app', /^CORS_ORIGINS: not an origin/],
    ['REDIS_URL', 'http://127.0.0.1:6379', /^REDIS_URL: /]
  ]
  for (const [variable, value, expected] of cases) {
    t.match(configError(t, { ...base, [variable]: value }), expected, `${variable}=${value}`)
  }
})

t.test('docs/configuration.md §2 TRUST_PROXY takes true/false, a hop count, or addresses proxy-addr understands', async (t) => {
  const tp = (v: string) => loadConfig({ ...base, TRUST_PROXY: v }).trustProxy
  t.equal(tp('TRUE'), true)
  t.equal(tp('false'), false)
  t.equal(tp(' '), false, 'blank is false')
  t.equal(tp('2'), 2)
  t.equal(tp('loopback'), 'loopback')
  t.equal(tp('10.0.0.0/8, 127.0.0.1'), '10.0.0.0/8, 127.0.0.1')
  t.equal(tp('fe80::/10'), 'fe80::/10')
  t.equal(tp('10.0.0.0/255.0.0.0'), '10.0.0.0/255.0.0.0')
})

t.test('docs/configuration.md §1 without a key: one line saying to set UPSTREAM_API_KEY or try npm run demo', async (t) => {
  const message = configError(t, {})
  t.match(message, /UPSTREAM_API_KEY/)
  t.match(message, /npm run demo/)
  t.match(configError(t, { UPSTREAM_API_KEY: '' }), /UPSTREAM_API_KEY is not set/, 'empty is unset')
  for (const bad of ['a\nb', 'a b', 'key\u0000', 'ключ']) {
    t.match(configError(t, { UPSTREAM_API_KEY: bad }), /^UPSTREAM_API_KEY: must be printable ASCII without spaces/, JSON.stringify(bad))
  }
})

t.test('docs/configuration.md §3 UPSTREAM_API_KEY_FILE: trailing newline ignored; unreadable → error naming the variable', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'key')
  writeFileSync(file, `${KEY}\n`)
  t.equal(loadConfig({ UPSTREAM_API_KEY_FILE: file }).upstream.apiKey, KEY)
  writeFileSync(file, `${KEY}\r\n`)
  t.equal(loadConfig({ UPSTREAM_API_KEY_FILE: file }).upstream.apiKey, KEY, 'CRLF too')
  writeFileSync(file, KEY)
  t.equal(loadConfig({ UPSTREAM_API_KEY_FILE: file }).upstream.apiKey, KEY, 'no newline')
  t.equal(loadConfig({ UPSTREAM_API_KEY: 'from-env', UPSTREAM_API_KEY_FILE: file }).upstream.apiKey, 'from-env', 'the variable wins')

  const missing = configError(t, { UPSTREAM_API_KEY_FILE: join(dir, 'nope') })
  t.match(missing, /^UPSTREAM_API_KEY_FILE: cannot read .*ENOENT/)
  t.notMatch(missing, KEY)
  t.match(configError(t, { UPSTREAM_API_KEY_FILE: dir }), /^UPSTREAM_API_KEY_FILE: cannot read .*EISDIR/, 'a directory')
  if (process.getuid?.() !== 0) {
    chmodSync(file, 0o000)
    t.match(configError(t, { UPSTREAM_API_KEY_FILE: file }), /^UPSTREAM_API_KEY_FILE: cannot read .*EACCES/)
  }
  writeFileSync(file, '\n')
  t.match(configError(t, { UPSTREAM_API_KEY_FILE: file }), /UPSTREAM_API_KEY is not set/, 'an empty file is no key')
})

t.test('docs/configuration.md §3 UPSTREAM_CA_FILE must hold a PEM certificate', async (t) => {
  const dir = tempDir(t)
  const pem = join(dir, 'ca.pem')
  writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
  const withCa = loadConfig({ ...base, UPSTREAM_CA_FILE: pem })
  t.match(withCa.upstream.ca, /BEGIN CERTIFICATE/)
  t.equal(describeConfig(withCa)['UPSTREAM_CA_FILE'], 'set')
  const junk = join(dir, 'junk.pem')
  writeFileSync(junk, 'hello')
  t.match(configError(t, { ...base, UPSTREAM_CA_FILE: junk }), /^UPSTREAM_CA_FILE: .* holds no PEM certificate$/)
  t.match(configError(t, { ...base, UPSTREAM_CA_FILE: join(dir, 'nope') }), /^UPSTREAM_CA_FILE: cannot read/)
})

t.test('docs/configuration.md §5 CLIENT_KEYS: token or name:token, comma separated; CLIENT_KEYS_FILE one per line', async (t) => {
  const keys = parseClientKeys(' alpha:tok-a , tok-b,,beta : tok:with:colons ')
  t.same(keys, [
    { name: 'alpha', token: 'tok-a' },
    { name: `client-${fingerprint('tok-b').slice(0, 8)}`, token: 'tok-b' },
    { name: 'beta', token: 'tok:with:colons' }
  ])
  t.notMatch(keys[1]?.name, 'tok-b', 'an unnamed token is named by a fingerprint, not by itself')
  t.same(parseClientKeys(''), [])
  t.throws(() => parseClientKeys('name:'), ConfigError)
  t.throws(() => parseClientKeys(':token'), /^CLIENT_KEYS: an entry has an empty name or token$/)

  const dir = tempDir(t)
  const file = join(dir, 'clients')
  writeFileSync(file, '# team tokens\nweb:tok-web\n\n   \ntok-cli\r\nops:tok-ops\n')
  const fromFile = loadClientKeys({ CLIENT_KEYS_FILE: file })
  t.same(
    fromFile.map((k) => k.token),
    ['tok-web', 'tok-cli', 'tok-ops'],
    'blank lines, comments and CRLF ignored'
  )
  const both = loadConfig({ ...base, CLIENT_KEYS: 'env:tok-env', CLIENT_KEYS_FILE: file })
  t.same(
    both.clientKeys.map((k) => k.name),
    ['env', 'web', `client-${fingerprint('tok-cli').slice(0, 8)}`, 'ops'],
    'variable and file combine'
  )
  t.equal(both.clientKeysFile, file)
  t.same(loadClientKeys({}), [])
  t.match(configError(t, { ...base, CLIENT_KEYS_FILE: join(dir, 'nope') }), /^CLIENT_KEYS_FILE: cannot read/)
})

t.test('docs/configuration.md §1 describeConfig never contains the key, client tokens, the metrics token or a Redis password', async (t) => {
  const secrets = ['sk-upstream-SECRET-1', 'client-SECRET-2', 'client-SECRET-3', 'metrics-SECRET-4', 'redis-SECRET-5']
  const c = loadConfig({
    UPSTREAM_API_KEY: secrets[0],
    CLIENT_KEYS: `web:${secrets[1]},${secrets[2]}`,
    METRICS_TOKEN: secrets[3],
    REDIS_URL: `redis://default:${secrets[4]}@redis.internal:6379/0`
  })
  const d = describeConfig(c)
  const text = JSON.stringify(d)
  for (const s of secrets) t.notMatch(text, s, `${s.split('-')[0]} is not in it`)
  t.equal(d['UPSTREAM_API_KEY'], `[redacted sha256:${fingerprint(secrets[0] as string)}]`)
  t.equal(d['METRICS_TOKEN'], '[redacted]')
  t.equal(d['CLIENT_KEYS'], '[redacted: 2 token(s)]')
  t.match(d['REDIS_URL'], /^redis:\/\/default:redacted@redis\.internal:6379\/0$/)
  t.equal(d['PORT'], 8080)
  for (const v of ENV_VARIABLES) {
    if (v === 'UPSTREAM_API_KEY_FILE') continue
    t.ok(v in d, `${v} is described`)
  }

  // A Redis URL whose only credential is a username (`redis://token@host`) hides that too.
  const userOnly = describeConfig(loadConfig({ ...base, REDIS_URL: 'redis://redis-SECRET-6@redis.internal' }))
  t.notMatch(JSON.stringify(userOnly), 'redis-SECRET-6')
  t.match(userOnly['REDIS_URL'], 'redacted@redis.internal')
  // One the URL parser rejects stops start-up, without echoing it.
  t.throws(() => loadConfig({ ...base, REDIS_URL: 'redis://:redis-SECRET-7@[broken' }), { name: 'ConfigError', message: /^REDIS_URL: not a valid URL/ })
  try {
    loadConfig({ ...base, REDIS_URL: 'redis://:redis-SECRET-7@[broken' })
  } catch (err) {
    t.notMatch((err as Error).message, 'redis-SECRET-7')
  }
  const plain = describeConfig(loadConfig({ ...base, REDIS_URL: 'redis://redis.internal:6379' }))
  t.equal(plain['REDIS_URL'], 'redis://redis.internal:6379')
  const none = describeConfig(loadConfig(base))
  t.equal(none['REDIS_URL'], null)
  t.equal(none['METRICS_TOKEN'], null)
  t.equal(none['UPSTREAM_CA_FILE'], null)
  t.equal(none['CLIENT_KEYS_FILE'], null)
  t.equal(none['PUBLIC_URL'], null)
  t.equal(none['IMAGE_SIGNING_KEY'], '[derived from the upstream key]')
  t.equal(none['IMAGE_REWRITE'], 'off')
  // the image settings when set: the signing key redacted, the public URL and rewrite as set
  const images = describeConfig(
    loadConfig({ ...base, PUBLIC_URL: 'https://gw.example.com/', IMAGE_SIGNING_KEY: 'image-SECRET-8-of-enough-length-000', IMAGE_REWRITE: 'on' })
  )
  t.notMatch(JSON.stringify(images), 'image-SECRET-8')
  t.equal(images['IMAGE_SIGNING_KEY'], '[redacted]')
  t.equal(images['PUBLIC_URL'], 'https://gw.example.com')
  t.equal(images['IMAGE_REWRITE'], 'on')
})
