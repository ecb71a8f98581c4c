import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { buildApp } from '../src/app.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { as, bearer, jwtFor, startTenancy, type Tenancy } from './helpers/tenancy.js'
import { UPSTREAM_KEY, type Reply } from './helpers/tenancy.js'
import { tempDataDir } from './helpers/data-dir.js'
import { sample } from './helpers/gateway.js'

const UNKNOWN = '1700000000000999'

/** polls as `headers` until the task is SUCCESS (its next read is a cache hit) */
async function untilDone(tn: Tenancy, id: string, headers: Record<string, string>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await tn.fetch(id, headers)
    if ((r.json as { status?: string } | undefined)?.status === 'SUCCESS') return
    await sleep(20)
  }
  throw new Error(`task ${id} never finished`)
}

function isNotFound(t: Test, r: Reply, id: string, what: string): void {
  t.equal(r.status, 404, `${what}: 404`)
  t.same(r.json, { statusCode: 404, code: 'MJGW_TASK_NOT_FOUND', error: 'Not Found', message: `task ${id} not found upstream` }, `${what}: the unknown-id body`)
}

const metricsText = async (tn: Tenancy): Promise<string> => (await tn.gw.call('GET', '/metrics')).text

t.test('docs/tenancy.md ownership: the submitter reads its task (route and hit lane); another client gets the unknown-id answer and upstream is never asked', async (t) => {
  const tn = await startTenancy(t)
  const id = await tn.submit(as('a'))
  t.equal((await tn.fetch(id, as('a'))).status, 200, 'the owner reads it at once (record written before the submit answer)')
  await untilDone(tn, id, as('a'))
  const laneBefore = (tn.gw.app.hitLane?.answered ?? 0)
  const hit = await tn.fetch(id, as('a'))
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal((tn.gw.app.hitLane?.answered ?? 0), laneBefore + 1, 'the owner’s hit is answered by the hit lane')

  const calls = tn.upstreamCalls()
  const denied = await tn.fetch(id, as('b'))
  isNotFound(t, denied, id, 'another client on a cached task')
  t.equal((tn.gw.app.hitLane?.answered ?? 0), laneBefore + 1, 'the lane never answers the other client')
  const unknown = await tn.fetch(UNKNOWN, as('b'))
  isNotFound(t, unknown, UNKNOWN, 'an unknown id')
  t.same(Object.keys(denied.headers).sort(), Object.keys(unknown.headers).sort(), 'the same headers as an unknown id')
  t.equal(denied.headers['content-type'], unknown.headers['content-type'])
  t.equal(tn.upstreamCalls(), calls, 'neither reached upstream')
  t.equal((await tn.fetch(id, as('a'))).headers['x-cache'], 'HIT', 'the cached body is still there for its owner')
  t.equal(sample(await metricsText(tn), 'mj_gateway_ownership_denied_total', { route: '/mj/task/:id/fetch' }), 2)
})

t.test('docs/tenancy.md ownership: a denial is indistinguishable from an id upstream does not know (ownership on vs. an unknown id asked upstream)', async (t) => {
  const tn = await startTenancy(t)
  const id = await tn.submit(as('a'))
  const open = await startTenancy(t, { OWNERLESS_TASKS: 'visible' })
  const asked = await open.fetch(UNKNOWN, as('b'))
  t.equal(open.sim.stats.byRoute['GET /mj/task/:id/fetch'], 1, 'the visible gateway asked upstream about the unknown id')
  const denied = await tn.fetch(id, as('b'))
  t.equal(denied.status, asked.status)
  t.same(denied.json, { ...(asked.json as object), message: `task ${id} not found upstream` })
  t.same(Object.keys(denied.headers).sort(), Object.keys(asked.headers).sort())
})

t.test('docs/tenancy.md ownership with three static clients, two JWT users and an :all operator: each reads exactly its own', async (t) => {
  const tn = await startTenancy(t)
  const clients: Record<string, Record<string, string>> = {
    a: as('a'),
    b: as('b'),
    c: as('c'),
    alice: bearer(jwtFor('alice')),
    bob: bearer(jwtFor('bob'))
  }
  const owned: Record<string, string> = {}
  for (const [who, headers] of Object.entries(clients)) owned[who] = await tn.submit(headers)
  for (const [reader, headers] of Object.entries(clients)) {
    for (const [owner, id] of Object.entries(owned)) {
      const r = await tn.fetch(id, headers)
      t.equal(r.status, reader === owner ? 200 : 404, `${reader} reads ${owner}'s task`)
    }
  }
  const freshAlice = bearer(jwtFor('alice', { ttlSeconds: 300 }))
  t.equal((await tn.fetch(owned['alice'] as string, freshAlice)).status, 200, 'a new token for the same user reads its tasks')
  for (const id of Object.values(owned)) t.equal((await tn.fetch(id, as('ops'))).status, 200, 'the :all client reads every task')
  const text = await metricsText(tn)
  t.equal(sample(text, 'mj_gateway_client_submits_total', { client: 'jwt', action: 'imagine' }), 2, 'JWT users share the label jwt')
  t.equal(sample(text, 'mj_gateway_client_submits_total', { client: 'a', action: 'imagine' }), 1)
  t.equal(sample(text, 'mj_gateway_client_requests_total', { client: 'ops', route: '/mj/task/:id/fetch', status_code: '200' }), 5)
  t.equal(sample(text, 'mj_gateway_client_requests_total', { client: 'b', route: '/mj/task/:id/fetch', status_code: '404' }), 4)
  t.notMatch(text, /alice|bob|token-/, 'no user name or token in a label')
})

t.test('docs/tenancy.md ownership: image-seed and list-by-condition follow the owner; denied ids are left out and never asked upstream', async (t) => {
  const tn = await startTenancy(t)
  const aId = await tn.submit(as('a'))
  const bId = await tn.submit(as('b'))
  const seedCalls = (): number => tn.sim.stats.byRoute['GET /mj/task/:id/image-seed'] ?? 0
  t.equal((await tn.gw.call('GET', `/mj/task/${aId}/image-seed`, { headers: as('a') })).status, 200)
  isNotFound(t, await tn.gw.call('GET', `/mj/task/${aId}/image-seed`, { headers: as('b') }), aId, 'image-seed of another client’s task')
  t.equal(seedCalls(), 1, 'the denied image-seed never reached upstream')

  const listCalls = (): number => tn.sim.stats.byRoute['POST /mj/task/list-by-condition'] ?? 0
  const mine = await tn.gw.post('/mj/task/list-by-condition', { ids: [aId, bId, UNKNOWN] }, as('b'))
  t.equal(mine.status, 200)
  t.same((mine.json as Array<{ id: string }>).map((x) => x.id), [bId], 'only b’s own task')
  const before = listCalls()
  const none = await tn.gw.post('/mj/task/list-by-condition', { ids: [aId, UNKNOWN] }, as('b'))
  t.same(none.json, [], 'nothing of a’s')
  t.equal(listCalls(), before, 'only denied ids: upstream not asked')
  const all = await tn.gw.post('/mj/task/list-by-condition', { ids: [aId, bId] }, as('ops'))
  t.same((all.json as Array<{ id: string }>).map((x) => x.id), [aId, bId], 'the :all client lists both')
  t.equal(sample(await metricsText(tn), 'mj_gateway_ownership_denied_total', { route: '/mj/task/list-by-condition' }), 4)
})

t.test('docs/tenancy.md ownership: a submit naming another client’s taskId is 404 and never spends anything, however the key is spelled', async (t) => {
  const tn = await startTenancy(t)
  const aId = await tn.submit(as('a'))
  await untilDone(tn, aId, as('a'))
  const submits = (): number => tn.sim.stats.byRoute['POST /mj/submit/action'] ?? 0
  const action = { taskId: aId, customId: `MJ::JOB::upsample::1::x` }
  isNotFound(t, await tn.gw.post('/mj/submit/action', action, as('b')), aId, 'action on a’s task')
  isNotFound(t, await tn.gw.post('/mj/submit/action', { TASKID: aId, customId: 'x' }, as('b')), aId, 'the key in capitals')
  isNotFound(t, await tn.gw.post('/mj/submit/action', `{"taskId":${aId},"customId":"x"}`, as('b')), aId, 'the id as a number')
  isNotFound(t, await tn.gw.post('/mj/submit/action', { taskId: 'x', customId: 'x', taskid: aId }, as('b')), 'x', 'a second spelling of the key')
  for (const kind of ['modal', 'change', 'simple-change']) {
    isNotFound(t, await tn.gw.post(`/mj/submit/${kind}`, { taskId: aId, action: 'UPSCALE', index: 1 }, as('c')), aId, kind)
  }
  // simple-change names its task in `content`: "<taskId> U1"
  isNotFound(t, await tn.gw.post('/mj/submit/simple-change', { content: `${aId} U1` }, as('b')), aId, 'simple-change naming it in content')
  isNotFound(t, await tn.gw.post('/mj/submit/simple-change', { content: `  ${aId}\tV2 ` }, as('b')), aId, 'with other white space')
  t.equal(submits(), 0, 'no action reached upstream')
  t.equal(tn.sim.stats.byRoute['POST /mj/submit/modal'] ?? 0, 0)
  t.equal(tn.sim.stats.byRoute['POST /mj/submit/simple-change'] ?? 0, 0)
  t.equal((await tn.gw.post('/mj/submit/simple-change', { content: `${aId} U1` }, as('a'))).status, 200, 'its owner may')
  t.equal((await tn.gw.post('/mj/submit/imagine', { prompt: 'a content member elsewhere names no task', content: aId }, as('b'))).status, 200)
  const own = await tn.gw.post('/mj/submit/action', action, as('a'))
  t.equal(own.status, 200, 'the owner may act on it')
  const child = (own.json as { result: string }).result
  t.equal((await tn.fetch(child, as('a'))).status, 200, 'the child task belongs to the owner too')
  t.equal((await tn.fetch(child, as('b'))).status, 404)
})

t.test('docs/tenancy.md ownership: a submit answered "already exists" (code 21) with another client’s task id does not make it theirs', async (t) => {
  const tn = await startTenancy(t)
  const aId = await tn.submit(as('a'))
  tn.sim.enqueue({ kind: 'json', body: { code: 21, description: 'task already exists', result: aId } })
  const again = await tn.gw.post('/mj/submit/imagine', { prompt: 'the same prompt' }, as('b'))
  t.equal(again.status, 200)
  t.match(again.json, { code: 21, result: aId })
  t.equal((await tn.fetch(aId, as('a'))).status, 200, 'still its first owner’s')
  isNotFound(t, await tn.fetch(aId, as('b')), aId, 'not the second client’s')
})

t.test('docs/tenancy.md ownership: OWNERLESS_TASKS decides for tasks without a record; TASK_OWNERSHIP=off and auto without identities turn it off', async (t) => {
  const hidden = await startTenancy(t)
  const elsewhere = hidden.sim.finishedTask()
  isNotFound(t, await hidden.fetch(elsewhere, as('a')), elsewhere, 'hidden (default): a task submitted elsewhere')
  t.equal((await hidden.fetch(elsewhere, as('ops'))).status, 200, 'the :all client still sees it')

  const visible = await startTenancy(t, { OWNERLESS_TASKS: 'visible' })
  const other = visible.sim.finishedTask()
  t.equal((await visible.fetch(other, as('a'))).status, 200, 'visible: anyone reads an ownerless task')
  const owned = await visible.submit(as('a'))
  t.equal((await visible.fetch(owned, as('b'))).status, 404, 'visible: an owned task stays its owner’s')

  const off = await startTenancy(t, { TASK_OWNERSHIP: 'off' })
  const aId = await off.submit(as('a'))
  t.equal((await off.fetch(aId, as('b'))).status, 200, 'off: any client reads any task')

  const open = await startTenancy(t, { CLIENT_KEYS: '', CLIENT_JWT_SECRET: '', PASSTHROUGH: 'on' })
  t.equal((await open.fetch(open.sim.finishedTask(), {})).status, 200, 'auto without client identities: off')
  const forced = await startTenancy(t, { CLIENT_KEYS: '', CLIENT_JWT_SECRET: '', PASSTHROUGH: 'on', TASK_OWNERSHIP: 'on' })
  const anon = await forced.submit({})
  t.equal((await forced.fetch(anon, {})).status, 200, 'on without identities: tasks submitted through the gateway are visible')
  t.equal((await forced.fetch(forced.sim.finishedTask(), {})).status, 404, 'on without identities: ownerless tasks hidden')
})

t.test('docs/tenancy.md owner records outlive a restart (embedded store under DATA_DIR)', async (t) => {
  const dataDir = tempDataDir(t)
  const first = await startTenancy(t, { DATA_DIR: dataDir })
  const aId = await first.submit(as('a'))
  const aliceId = await first.submit(bearer(jwtFor('alice')))
  await first.gw.app.close()
  const second = await startTenancy(t, { DATA_DIR: dataDir }, first.sim.url)
  t.equal((await second.fetch(aId, as('a'))).status, 200, 'the owner still reads it')
  t.equal((await second.fetch(aId, as('b'))).status, 404, 'the other client still cannot')
  t.equal((await second.fetch(aliceId, bearer(jwtFor('alice')))).status, 200, 'a JWT user’s record too')
  const other = await startTenancy(t, { DATA_DIR: dataDir, UPSTREAM_API_KEY: 'another-upstream-key' }, first.sim.url)
  t.equal((await other.fetch(aId, as('a'))).status, 404, 'records are namespaced by the upstream key')
})

t.test('docs/tenancy.md a DATA_DIR that cannot be written stops start-up with one line naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-ro-'))
  t.teardown(() => chmodSync(dir, 0o700))
  const file = join(dir, 'not-a-dir')
  writeFileSync(file, 'x')
  const env = { UPSTREAM_API_KEY: UPSTREAM_KEY, CLIENT_KEYS: 'a:tok', LOG_LEVEL: 'silent' }
  await t.rejects(buildApp(loadConfig({ ...env, DATA_DIR: file })), { name: 'ConfigError', message: /^DATA_DIR: cannot write the embedded store in .*not-a-dir \(\w+\)$/ })
  if (process.getuid?.() !== 0) {
    chmodSync(dir, 0o500)
    await t.rejects(buildApp(loadConfig({ ...env, DATA_DIR: join(dir, 'data') })), ConfigError, 'a read-only parent directory')
  }
  t.ok(await buildApp(loadConfig({ ...env, DATA_DIR: file, TASK_OWNERSHIP: 'off' })).then((app) => app.close().then(() => true)), 'not opened when nothing needs it')
})

t.test('docs/tenancy.md a store that fails at run time denies (fails closed) and is counted', async (t) => {
  // Redis that is not there: every owner lookup and write fails
  const tn = await startTenancy(t, { REDIS_URL: 'redis://127.0.0.1:1' })
  const aId = await tn.submit(as('a'))
  t.equal((await tn.fetch(aId, as('a'))).status, 200, 'the submitter still reads it on this replica (remembered in memory)')
  const calls = tn.upstreamCalls()
  isNotFound(t, await tn.fetch(aId, as('b')), aId, 'another client')
  isNotFound(t, await tn.fetch(UNKNOWN, as('a')), UNKNOWN, 'an id whose owner cannot be looked up')
  t.same((await tn.gw.post('/mj/task/list-by-condition', { ids: [UNKNOWN] }, as('a'))).json, [])
  t.equal(tn.upstreamCalls(), calls)
  const errors = sample(await metricsText(tn), 'mj_gateway_tenancy_store_errors_total', { store: 'redis' }) ?? 0
  t.ok(errors >= 3, `store errors counted (${errors})`)
  t.notMatch(tn.gw.logs(), /token-alpha|token-bravo/, 'no token in the logs')
})

t.test('property: for any interleaving of submits and reads by several clients, no client receives a task body it does not own', async (t) => {
  const tn = await startTenancy(t)
  const readers = { a: as('a'), b: as('b'), c: as('c'), alice: bearer(jwtFor('alice')), bob: bearer(jwtFor('bob')) }
  const names = Object.keys(readers) as Array<keyof typeof readers>
  const owner = new Map<string, string>()
  const ids: string[] = [UNKNOWN]
  let served = 0
  const step = fc.record({ submit: fc.boolean(), who: fc.constantFrom(...names), pick: fc.nat(), via: fc.constantFrom('fetch', 'list', 'seed') })
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
      for (const s of steps) {
        if (s.submit) {
          const id = await tn.submit(readers[s.who])
          owner.set(id, s.who)
          ids.push(id)
          continue
        }
        const id = ids[s.pick % ids.length] as string
        let bodies: Array<{ id?: unknown }> = []
        if (s.via === 'fetch') {
          const r = await tn.fetch(id, readers[s.who])
          if (r.status === 200) bodies = [r.json as { id: unknown }]
        } else if (s.via === 'list') {
          const r = await tn.gw.post('/mj/task/list-by-condition', { ids: [id, ...ids.slice(-3)] }, readers[s.who])
          bodies = r.json as Array<{ id: unknown }>
        } else {
          const r = await tn.gw.call('GET', `/mj/task/${id}/image-seed`, { headers: readers[s.who] })
          if (r.status === 200 && owner.get(id) !== s.who) return false
        }
        for (const b of bodies) {
          served++
          if (owner.get(String(b.id)) !== s.who) return false
        }
      }
      return true
    }),
    { numRuns: 25 }
  )
  t.ok(served > 0, `${served} task bodies served, each to its owner`)
})
