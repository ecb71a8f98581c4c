import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ANONYMOUS, ClientKeyTable, presentedTokens } from '../src/clients/client-keys.js'
import { ConfigError, fingerprint, loadConfig } from '../src/config.js'
import { UPSTREAM_KEY, startGateway } from './helpers/gateway.js'
import { jsonObject } from './helpers/net.js'

/** as these tests were written: an id nobody submitted is unknown upstream (null → 404) */
const ACCESS = { upstream: { inventUnknownTasks: false } }

const ALPHA = 'tok-alpha-7f3a9c1e2b4d'
const BETA = 'tok-beta-55e1c0ffee99'
const BARE = 'tok-bare-0a1b2c3d4e5f'
const ROTATED = 'tok-rotated-abcdef123456'

function tempDir(t: { teardown: (fn: () => unknown) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-auth-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const tableOf = (env: Record<string, string>): ClientKeyTable => new ClientKeyTable(loadConfig({ UPSTREAM_API_KEY: 'k', ...env }))

t.test('the token table', async (t) => {
  t.test('docs/access-control.md §1 Authorization: Bearer {token} or mj-api-secret: {token} identify the client by name', async (t) => {
    const table = tableOf({ CLIENT_KEYS: `alpha:${ALPHA}, beta:${BETA}, ${BARE}` })
    t.ok(table.enabled)
    t.equal(table.size, 3)
    t.has(table.identify({ authorization: `Bearer ${ALPHA}` }), { authorized: true, name: 'alpha' })
    t.has(table.identify({ 'mj-api-secret': BETA }), { authorized: true, name: 'beta' })
    t.has(table.identify({ authorization: `bearer ${ALPHA}` }), { authorized: true, name: 'alpha' }, 'the scheme is case-insensitive')
    t.has(table.identify({ authorization: `Bearer   ${ALPHA}  ` }), { authorized: true, name: 'alpha' }, 'surrounding spaces ignored')
    const bare = table.identify({ authorization: `Bearer ${BARE}` })
    t.equal(bare.name, `client-${fingerprint(BARE).slice(0, 8)}`, 'a bare token is named by a fingerprint')
    t.notMatch(String(bare.name), BARE)
  })

  t.test('docs/access-control.md §1 missing or wrong credentials are anonymous', async (t) => {
    const table = tableOf({ CLIENT_KEYS: `alpha:${ALPHA}` })
    t.equal(table.identify({}), ANONYMOUS)
    t.equal(table.identify({ authorization: 'Bearer nope' }), ANONYMOUS)
    t.equal(table.identify({ authorization: `Bearer ${ALPHA}x` }), ANONYMOUS, 'a longer token is not a prefix match')
    t.equal(table.identify({ authorization: ALPHA }), ANONYMOUS, 'no scheme')
    t.equal(table.identify({ authorization: `Basic ${ALPHA}` }), ANONYMOUS, 'another scheme')
    t.equal(table.identify({ authorization: 'Bearer ' }), ANONYMOUS)
    t.equal(table.identify({ authorization: 'Bearer    ' }), ANONYMOUS)
    t.equal(table.identify({ 'mj-api-secret': '  ' }), ANONYMOUS)
    t.equal(table.identify({ 'mj-api-secret': `${ALPHA}, ${ALPHA}` }), ANONYMOUS, 'a repeated header is not a token')
    t.equal(table.identify({ cookie: `token=${ALPHA}` }), ANONYMOUS, 'cookies are not credentials')
  })

  t.test('either valid credential admits; the bearer one names the client when both are valid', async (t) => {
    const table = tableOf({ CLIENT_KEYS: `alpha:${ALPHA},beta:${BETA}` })
    t.equal(table.identify({ authorization: 'Bearer wrong', 'mj-api-secret': BETA }).name, 'beta')
    t.equal(table.identify({ authorization: `Bearer ${ALPHA}`, 'mj-api-secret': BETA }).name, 'alpha')
    t.same(presentedTokens({ authorization: `Bearer ${ALPHA}`, 'mj-api-secret': BETA }), [ALPHA, BETA])
  })

  t.test('docs/access-control.md §1 CLIENT_KEYS empty = no client auth: everyone is admitted, nameless', async (t) => {
    const table = tableOf({})
    t.notOk(table.enabled)
    t.notOk(table.reloadable)
    t.has(table.identify({}), { authorized: true, name: undefined })
    t.equal(table.reload(), 0, 'nothing to re-read')
  })

  t.test('a CLIENT_KEYS_FILE that holds no token closes the gateway rather than opening it', async (t) => {
    const file = join(tempDir(t), 'keys')
    writeFileSync(file, '# no tokens yet\n')
    const table = tableOf({ CLIENT_KEYS_FILE: file })
    t.ok(table.enabled)
    t.equal(table.size, 0)
    t.equal(table.identify({ authorization: 'Bearer anything' }), ANONYMOUS)
  })

  t.test('docs/access-control.md §2 CLIENT_KEYS_FILE is re-read by reload(); CLIENT_KEYS stays', async (t) => {
    const file = join(tempDir(t), 'keys')
    writeFileSync(file, `beta:${BETA}\n`)
    const table = tableOf({ CLIENT_KEYS: `alpha:${ALPHA}`, CLIENT_KEYS_FILE: file })
    t.ok(table.reloadable)
    t.equal(table.identify({ 'mj-api-secret': BETA }).name, 'beta')

    writeFileSync(file, `# rotated\nbeta:${ROTATED}\n`)
    t.equal(table.reload(), 2)
    t.equal(table.identify({ 'mj-api-secret': BETA }), ANONYMOUS, 'the old file token is gone')
    t.equal(table.identify({ 'mj-api-secret': ROTATED }).name, 'beta', 'the new one is in')
    t.equal(table.identify({ 'mj-api-secret': ALPHA }).name, 'alpha', 'the CLIENT_KEYS token stays')

    writeFileSync(file, 'broken:\n')
    t.throws(() => table.reload(), ConfigError, 'a malformed file is refused')
    t.equal(table.identify({ 'mj-api-secret': ROTATED }).name, 'beta', '...and the previous tokens stay')

    rmSync(file)
    t.throws(() => table.reload(), { name: 'ConfigError', message: /CLIENT_KEYS_FILE: cannot read .*ENOENT/ })
    t.equal(table.size, 2)
  })

  t.test('a hand-built config without clientKeysInline keeps only file tokens on reload', async (t) => {
    const file = join(tempDir(t), 'keys')
    writeFileSync(file, `beta:${BETA}\n`)
    const table = new ClientKeyTable({ clientKeys: [{ name: 'alpha', token: ALPHA }], clientKeysFile: file })
    t.equal(table.identify({ 'mj-api-secret': ALPHA }).name, 'alpha')
    t.equal(table.reload(), 1)
    t.equal(table.identify({ 'mj-api-secret': ALPHA }), ANONYMOUS)
    const noFile = new ClientKeyTable({ clientKeys: [{ name: 'alpha', token: ALPHA }] })
    t.equal(noFile.reload(), 1)
  })
})

t.test('docs/access-control.md §1 client credentials on GET /mj/task/:id/fetch', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info', CLIENT_KEYS: `alpha:${ALPHA},beta:${BETA}` }, ACCESS)
  const id = gw.upstream.finishedTask()
  const path = `/mj/task/${id}/fetch`

  t.test('docs/access-control.md §1 client token missing → 401 MJGW_UNAUTHORIZED, no upstream call', async (t) => {
    const before = gw.upstream.calls
    const res = await gw.request('GET', path)
    t.equal(res.status, 401)
    t.same(jsonObject(res), { statusCode: 401, code: 'MJGW_UNAUTHORIZED', error: 'Unauthorized', message: 'missing or invalid client token' })
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(gw.upstream.calls, before)
  })

  t.test('docs/access-control.md §1 client token wrong → 401 MJGW_UNAUTHORIZED, no upstream call', async (t) => {
    const before = gw.upstream.calls
    for (const headers of [{ authorization: 'Bearer wrong' }, { 'mj-api-secret': 'wrong' }, { authorization: `Basic ${ALPHA}` }]) {
      const res = await gw.request('GET', path, { headers })
      t.equal(res.status, 401, JSON.stringify(Object.keys(headers)))
      t.equal(jsonObject(res)?.['code'], 'MJGW_UNAUTHORIZED')
    }
    t.equal(gw.upstream.calls, before)
  })

  t.test('docs/access-control.md §1 a valid token as Authorization: Bearer or as mj-api-secret is served', async (t) => {
    const a = await gw.request('GET', path, { headers: { authorization: `Bearer ${ALPHA}` } })
    t.equal(a.status, 200)
    t.equal(jsonObject(a)?.['id'], id)
    const b = await gw.request('GET', path, { headers: { 'mj-api-secret': BETA } })
    t.equal(b.status, 200)
    t.equal(b.headers['x-cache'], 'HIT')
  })

  t.test('docs/access-control.md §1 401 comes before any cache work: a cached task is never served without a valid token', async (t) => {
    const cached = gw.upstream.finishedTask()
    const p = `/mj/task/${cached}/fetch`
    const first = await gw.request('GET', p, { headers: { authorization: `Bearer ${ALPHA}` } })
    t.equal(first.headers['x-cache'], 'MISS')
    t.match(first.headers['cache-control'], /^private, max-age=\d+$/, 'stored as terminal')
    const before = gw.upstream.calls
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { 'if-none-match': String(first.headers['etag']) }]) {
      const res = await gw.request('GET', p, { headers })
      t.equal(res.status, 401)
      t.equal(res.headers['x-cache'], undefined, 'no cache status')
      t.equal(res.headers['etag'], undefined, 'no etag: not even the existence of the task leaks')
      t.notMatch(res.text, cached)
    }
    t.equal(gw.upstream.calls, before)
    const again = await gw.request('GET', p, { headers: { 'mj-api-secret': BETA } })
    t.equal(again.headers['x-cache'], 'HIT')
  })

  t.test('docs/headers.md §10 upstream gets exactly one credential, the upstream key; client credentials and cookies are never forwarded', async (t) => {
    const fresh = gw.upstream.createTask({ outcome: 'never' })
    const res = await gw.request('GET', `/mj/task/${fresh}/fetch`, {
      headers: { authorization: `Bearer ${ALPHA}`, 'mj-api-secret': BETA, cookie: 'session=s3cr3t', 'x-api-key': 'other' }
    })
    t.equal(res.status, 200)
    const seen = gw.upstream.lastRequest?.headers ?? {}
    t.equal(seen['authorization'], `Bearer ${UPSTREAM_KEY}`)
    t.equal(seen['mj-api-secret'], undefined)
    t.equal(seen['cookie'], undefined)
    t.equal(seen['x-api-key'], undefined)
    t.notMatch(JSON.stringify(seen), ALPHA)
    t.notMatch(JSON.stringify(seen), BETA)
  })

  t.test('docs/access-control.md §1 /healthz and /readyz never need a client token; /metrics is not guarded by client tokens', async (t) => {
    t.equal((await gw.request('GET', '/healthz')).status, 200)
    t.equal((await gw.request('GET', '/readyz')).status, 200)
    t.equal((await gw.request('GET', '/metrics')).status, 200)
    t.equal((await gw.request('GET', '/healthz', { headers: { authorization: 'Bearer wrong' } })).status, 200)
  })

  t.test('docs/access-control.md §8 no log line, response or error carries a client token or the upstream key; logs name the client', async (t) => {
    await gw.request('GET', path, { headers: { authorization: `Bearer ${ALPHA}` } })
    await gw.request('GET', path, { headers: { authorization: `Bearer ${ALPHA}-typo` } })
    const logs = gw.logs()
    for (const secret of [ALPHA, BETA, UPSTREAM_KEY]) t.notMatch(logs, secret)
    const completed = gw.logLines().map((l) => JSON.parse(l) as { msg?: string; res?: { statusCode: number; client?: string } })
    t.ok(completed.some((l) => l.msg === 'request completed' && l.res?.statusCode === 200 && l.res.client === 'alpha'), 'the name is logged')
    t.ok(completed.some((l) => l.msg === 'request completed' && l.res?.statusCode === 401 && l.res.client === undefined))
  })
})

t.test('docs/access-control.md §1 CLIENT_KEYS empty = no client auth: /mj routes answer without a token', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info' }, ACCESS)
  const id = gw.upstream.finishedTask()
  const res = await gw.request('GET', `/mj/task/${id}/fetch`)
  t.equal(res.status, 200)
  const anyToken = await gw.request('GET', `/mj/task/${id}/fetch`, { headers: { authorization: 'Bearer whatever' } })
  t.equal(anyToken.status, 200)
  t.equal(gw.upstream.lastRequest?.headers['authorization'], `Bearer ${UPSTREAM_KEY}`, 'the client header is not forwarded')
})

t.test('docs/headers.md §10 with UPSTREAM_AUTH_STYLE=mj-api-secret the upstream still gets exactly one credential', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info', CLIENT_KEYS: ALPHA, UPSTREAM_AUTH_STYLE: 'mj-api-secret' }, { upstream: { ...ACCESS.upstream, authStyle: 'mj-api-secret' } })
  const id = gw.upstream.createTask({ outcome: 'never' })
  const res = await gw.request('GET', `/mj/task/${id}/fetch`, { headers: { authorization: `Bearer ${ALPHA}`, 'mj-api-secret': ALPHA } })
  t.equal(res.status, 200)
  const seen = gw.upstream.lastRequest?.headers ?? {}
  t.equal(seen['mj-api-secret'], UPSTREAM_KEY)
  t.equal(seen['authorization'], undefined)
})

t.test('docs/access-control.md §2 CLIENT_KEYS_FILE is re-read by app.reloadClientKeys() (SIGHUP): rotation without a restart', async (t) => {
  const file = join(tempDir(t), 'client-keys')
  writeFileSync(file, `# teams\nalpha:${ALPHA}\nbeta:${BETA}\n`)
  const gw = await startGateway(t, { LOG_LEVEL: 'info', CLIENT_KEYS_FILE: file }, ACCESS)
  const id = gw.upstream.finishedTask()
  const path = `/mj/task/${id}/fetch`
  t.equal((await gw.request('GET', path, { headers: { authorization: `Bearer ${BETA}` } })).status, 200)

  writeFileSync(file, `alpha:${ALPHA}\nbeta:${ROTATED}\n`)
  t.same(gw.app.reloadClientKeys(), { ok: true, tokens: 2 })
  t.equal((await gw.request('GET', path, { headers: { authorization: `Bearer ${BETA}` } })).status, 401, 'the rotated-out token is refused')
  t.equal((await gw.request('GET', path, { headers: { authorization: `Bearer ${ROTATED}` } })).status, 200, 'the new token works at once')
  t.equal((await gw.request('GET', path, { headers: { authorization: `Bearer ${ALPHA}` } })).status, 200)

  writeFileSync(file, `alpha:${ALPHA}\n:nameless\n`)
  t.same(gw.app.reloadClientKeys(), { ok: false, tokens: 2 }, 'a bad file is refused whole')
  t.equal((await gw.request('GET', path, { headers: { authorization: `Bearer ${ROTATED}` } })).status, 200, 'the previous tokens stay')

  writeFileSync(file, '')
  t.same(gw.app.reloadClientKeys(), { ok: true, tokens: 0 })
  t.equal((await gw.request('GET', path, { headers: { authorization: `Bearer ${ALPHA}` } })).status, 401, 'an emptied file closes, never opens')
  t.equal((await gw.request('GET', path)).status, 401)

  const lines = gw.logLines().map((l) => JSON.parse(l) as { msg: string; tokens?: number; level: number; reason?: string })
  t.ok(lines.some((l) => l.msg === 'client tokens reloaded' && l.tokens === 2))
  t.ok(lines.some((l) => l.msg === 'client token reload failed; the previous tokens stay' && l.level === 50 && l.tokens === 2))
  t.ok(lines.some((l) => l.level === 40 && /every \/mj request is refused/.test(l.msg)))
  const logs = gw.logs()
  for (const secret of [ALPHA, BETA, ROTATED, UPSTREAM_KEY, 'nameless']) t.notMatch(logs, secret, 'no token in any log line')
})

t.test('reloadClientKeys() without CLIENT_KEYS_FILE changes nothing and says so', async (t) => {
  const gw = await startGateway(t, { LOG_LEVEL: 'info', CLIENT_KEYS: ALPHA }, ACCESS)
  t.same(gw.app.reloadClientKeys(), { ok: true, tokens: 1 })
  t.ok(gw.logLines().some((l) => l.includes('no CLIENT_KEYS_FILE to re-read')))
})
