import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { createSigner } from 'fast-jwt'
import { loadConfig, parseClientKeys } from '../src/config.js'
import { ClientKeyTable } from '../src/clients/client-keys.js'
import { JwtIdentities } from '../src/clients/jwt-identity.js'
import { as, bearer, jwtFor, JWT_SECRET, startTenancy, TOKENS } from './helpers/tenancy.js'
import { tempDataDir } from './helpers/data-dir.js'

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')
const nowS = (): number => Math.floor(Date.now() / 1000)

t.test('docs/tenancy.md identities: name:token:all entries; a bare token may end in anything', async (t) => {
  t.same(parseClientKeys('ops:tok-1:all, web:tok-2, tok-3:all'), [
    { name: 'ops', token: 'tok-1', all: true },
    { name: 'web', token: 'tok-2' },
    { name: 'tok-3', token: 'all' }
  ])
  const table = new ClientKeyTable({ clientKeys: parseClientKeys('ops:tok-1:all,web:tok-2') })
  t.match(table.identify(bearer('tok-1')), { authorized: true, name: 'ops', all: true, owner: 'ops', label: 'ops' })
  t.match(table.identify(bearer('tok-2')), { authorized: true, name: 'web', all: false })
  t.match(table.identify(bearer('tok-1:all')), { authorized: false }, 'the marker is not part of the token')
})

t.test('docs/tenancy.md JWT settings: one of a secret or a PEM key, each checked at start-up with one line', async (t) => {
  const dir = tempDataDir(t)
  const base = { UPSTREAM_API_KEY: 'k' }
  t.throws(() => loadConfig({ ...base, CLIENT_JWT_SECRET: 'short' }), { message: /^CLIENT_JWT_SECRET: must be at least 32 characters \(got 5\)$/ })
  const pemFile = join(dir, 'key.pem')
  writeFileSync(pemFile, 'not a key')
  t.throws(() => loadConfig({ ...base, CLIENT_JWT_SECRET: JWT_SECRET, CLIENT_JWT_PUBLIC_KEY_FILE: pemFile }), { message: /set one of them, not both/ })
  t.throws(() => loadConfig({ ...base, CLIENT_JWT_PUBLIC_KEY_FILE: pemFile }), { message: /^CLIENT_JWT_PUBLIC_KEY_FILE: .* holds no PEM public key$/ })
  t.throws(() => loadConfig({ ...base, CLIENT_JWT_PUBLIC_KEY_FILE: join(dir, 'missing.pem') }), { message: /^CLIENT_JWT_PUBLIC_KEY_FILE: cannot read/ })
  const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string
  writeFileSync(pemFile, ed)
  t.throws(() => loadConfig({ ...base, CLIENT_JWT_PUBLIC_KEY_FILE: pemFile }), { message: /must hold an RSA or P-256 EC public key/ })
  t.throws(() => loadConfig({ ...base, CLIENT_JWT_SECRET: JWT_SECRET, CLIENT_JWT_MAX_TTL_SECONDS: '0' }), { message: /^CLIENT_JWT_MAX_TTL_SECONDS: / })
  const cfg = loadConfig({ ...base, CLIENT_JWT_SECRET: JWT_SECRET })
  t.equal(cfg.ownership.enabled, true, 'auto: JWT identities turn ownership on')
  t.equal(JSON.stringify(cfg).includes(JWT_SECRET), true, 'kept in the config')
  const { describeConfig } = await import('../src/config.js')
  t.notOk(JSON.stringify(describeConfig(cfg)).includes(JWT_SECRET), 'never in the described configuration')
  t.equal(describeConfig(cfg)['CLIENT_JWT_SECRET'], '[redacted]')
  t.equal(describeConfig(cfg)['CLIENT_JWT_PUBLIC_KEY_FILE'], null, 'a secret, not a key file')
  // a public key file: described by its algorithms, the secret unset
  writeFileSync(pemFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string)
  const rsa = describeConfig(loadConfig({ ...base, CLIENT_JWT_PUBLIC_KEY_FILE: pemFile }))
  t.match(rsa['CLIENT_JWT_PUBLIC_KEY_FILE'], /^set \(RS256/)
  t.equal(rsa['CLIENT_JWT_SECRET'], null)
})

t.test('docs/tenancy.md JWT: bad tokens are 401 and nothing of them is logged', async (t) => {
  const tn = await startTenancy(t, { CLIENT_JWT_AUDIENCE: 'mj-gw', CLIENT_JWT_ISSUER: 'https://app.example', CLIENT_JWT_MAX_TTL_SECONDS: '3600' })
  const good = { aud: 'mj-gw', iss: 'https://app.example' }
  const id = await tn.submit(bearer(jwtFor('alice', good)))
  t.equal((await tn.fetch(id, bearer(jwtFor('alice', good)))).status, 200, 'a good token')
  const hs = (payload: Record<string, unknown>, key = JWT_SECRET): string => createSigner({ key, algorithm: 'HS256' })(payload)
  const bad: Record<string, string> = {
    forged: jwtFor('alice', { ...good, key: 'another-secret-of-enough-length-0123456789' }),
    expired: hs({ sub: 'alice', ...good, iat: nowS() - 120, exp: nowS() - 60 }),
    'wrong audience': jwtFor('alice', { ...good, aud: 'other' }),
    'no audience': jwtFor('alice', { iss: good.iss }),
    'wrong issuer': jwtFor('alice', { ...good, iss: 'https://evil.example' }),
    'no issuer': jwtFor('alice', { aud: good.aud }),
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', ...good, exp: nowS() + 60 })}.`,
    'over-long-lived': jwtFor('alice', { ...good, ttlSeconds: 7200 }),
    'over-long-lived without iat': hs({ sub: 'alice', ...good, exp: nowS() + 7200 }),
    'over-long-lived behind an iat in the future': hs({ sub: 'alice', ...good, iat: nowS() + 86_400 * 365 - 60, exp: nowS() + 86_400 * 365 }),
    'no exp': hs({ sub: 'alice', ...good, iat: nowS() }),
    'no sub': hs({ ...good, iat: nowS(), exp: nowS() + 60 }),
    'sub with spaces': hs({ sub: 'a b', ...good, iat: nowS(), exp: nowS() + 60 }),
    'RS256 header on an HS256 secret': `${b64({ alg: 'RS256' })}.${b64({ sub: 'alice', ...good, exp: nowS() + 60 })}.c2ln`,
    garbage: 'a.b.c'
  }
  for (const [what, token] of Object.entries(bad)) {
    const r = await tn.fetch(id, bearer(token))
    t.equal(r.status, 401, what)
    t.match(r.json, { code: 'MJGW_UNAUTHORIZED' })
    const r2 = await tn.gw.call('GET', `/mj/task/${id}/fetch`, { headers: { 'mj-api-secret': token } })
    t.equal(r2.status, 401, `${what} in mj-api-secret`)
  }
  const logs = tn.gw.logs()
  for (const token of Object.values(bad)) {
    for (const part of token.split('.').filter((p) => p.length > 3)) t.notOk(logs.includes(part), 'no part of a bad token in the logs')
  }
  t.match(logs, /"client":"jwt:alice"/, 'the access line names the JWT user')
})

t.test('docs/tenancy.md JWT: RS256 and ES256 public keys from CLIENT_JWT_PUBLIC_KEY_FILE; the other algorithm is refused', async (t) => {
  const dir = tempDataDir(t)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const sign = (key: string, algorithm: 'RS256' | 'ES256'): string =>
    createSigner({ key, algorithm, expiresIn: 60_000 })({ sub: 'carol' })
  const rsaPem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const ecPem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  for (const [alg, pair, priv, otherPriv, otherAlg] of [
    ['RS256', rsa, rsaPem, ecPem, 'ES256'],
    ['ES256', ec, ecPem, rsaPem, 'RS256']
  ] as const) {
    const file = join(dir, `${alg}.pem`)
    writeFileSync(file, pair.publicKey.export({ type: 'spki', format: 'pem' }) as string)
    const tn = await startTenancy(t, { CLIENT_JWT_SECRET: '', CLIENT_JWT_PUBLIC_KEY_FILE: file })
    const id = await tn.submit(bearer(sign(priv, alg)))
    t.equal((await tn.fetch(id, bearer(sign(priv, alg)))).status, 200, `${alg}: good token`)
    t.equal((await tn.fetch(id, bearer(sign(otherPriv, otherAlg)))).status, 401, `${alg}: a token of another key and algorithm`)
    t.equal((await tn.fetch(id, as('b'))).status, 404, `${alg}: static clients work beside it`)
    t.equal((await tn.fetch(id, bearer(TOKENS.a))).status, 404)
  }
})

t.test('JwtIdentities: a static token wins over a JWT, and a verified token is remembered', async (t) => {
  const ids = new JwtIdentities({ key: JWT_SECRET, algorithms: ['HS256'], maxTtlSeconds: 600 })
  const token = jwtFor('dave', { ttlSeconds: 60 })
  t.equal(ids.subject(token), 'dave')
  t.equal(ids.subject(token), 'dave', 'again (cached)')
  t.equal(ids.subject('not-a-jwt'), undefined)
  const table = new ClientKeyTable({ clientKeys: [{ name: 'web', token: 'tok' }], jwt: { key: JWT_SECRET, algorithms: ['HS256'], maxTtlSeconds: 600 } })
  t.match(table.identify({ authorization: `Bearer ${token}`, 'mj-api-secret': 'tok' }), { name: 'web' })
  t.match(table.identify({ authorization: `Bearer ${token}` }), { name: 'jwt:dave', owner: 'jwt:dave', label: 'jwt', all: false })
})
