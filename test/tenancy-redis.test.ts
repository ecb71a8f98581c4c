import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startRedisServer } from './helpers/redis-server.js'
import { as, bearer, jwtFor, startTenancy, type Tenancy } from './helpers/tenancy.js'
import { sample } from './helpers/gateway.js'

async function redisUp(tn: Tenancy): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await tn.gw.call('GET', '/readyz')
    if ((r.json as { redis: string }).redis === 'up') return
    await sleep(25)
  }
  throw new Error('redis never up')
}

t.test('docs/tenancy.md with REDIS_URL: an owner record written by replica A is enforced by replica B (route and hit lane)', async (t) => {
  const redis = await startRedisServer(t)
  const a = await startTenancy(t, { REDIS_URL: redis.url })
  const b = await startTenancy(t, { REDIS_URL: redis.url }, a.sim.url)
  await Promise.all([redisUp(a), redisUp(b)])
  const id = await a.submit(as('a'))
  const aliceId = await a.submit(bearer(jwtFor('alice')))
  const calls = a.upstreamCalls()
  t.equal((await b.fetch(id, as('b'))).status, 404, 'B denies another client')
  t.equal((await b.fetch(aliceId, bearer(jwtFor('bob')))).status, 404, 'B denies another JWT user')
  t.equal(a.upstreamCalls(), calls, 'without asking upstream')
  for (let i = 0; i < 200; i++) {
    const r = await b.fetch(id, as('a'))
    t.equal(r.status, 200)
    if ((r.json as { status: string }).status === 'SUCCESS') break
    await sleep(20)
  }
  t.equal((await b.fetch(aliceId, bearer(jwtFor('alice')))).status, 200, 'B serves the JWT owner')
  const lane = (b.gw.app.hitLane?.answered ?? 0)
  t.equal((await b.fetch(id, as('a'))).headers['x-cache'], 'HIT')
  t.equal((b.gw.app.hitLane?.answered ?? 0), lane + 1, 'B’s hit lane answers the owner once the owner is known')
  t.equal((await b.fetch(id, as('c'))).status, 404)
  const listed = await b.gw.post('/mj/task/list-by-condition', { ids: [id, aliceId] }, as('a'))
  t.same((listed.json as Array<{ id: string }>).map((x) => x.id), [id])
  t.equal(sample((await b.gw.call('GET', '/metrics')).text, 'mj_gateway_tenancy_store_errors_total', { store: 'redis' }), 0)
})

t.test('docs/tenancy.md SUBMIT_QUOTA_PER_DAY counts in Redis across replicas, per client', async (t) => {
  const redis = await startRedisServer(t)
  const a = await startTenancy(t, { REDIS_URL: redis.url, SUBMIT_QUOTA_PER_DAY: '2' })
  const b = await startTenancy(t, { REDIS_URL: redis.url, SUBMIT_QUOTA_PER_DAY: '2' }, a.sim.url)
  await Promise.all([redisUp(a), redisUp(b)])
  await a.submit(as('a'))
  await b.submit(as('a'))
  const submits = a.sim.stats.byRoute['POST /mj/submit/imagine']
  const over = await a.gw.post('/mj/submit/imagine', { prompt: 'x' }, as('a'))
  t.equal(over.status, 429)
  t.match(over.json, { statusCode: 429, code: 'MJGW_QUOTA_EXCEEDED', error: 'Too Many Requests' })
  const retry = Number(over.headers['retry-after'])
  t.ok(retry >= 1 && retry <= 86_400, `retry-after until the next UTC day (${retry})`)
  t.equal((await b.gw.post('/mj/submit/imagine', { prompt: 'x' }, as('a'))).status, 429, 'on the other replica too')
  t.equal(a.sim.stats.byRoute['POST /mj/submit/imagine'], submits, 'over the quota: upstream not asked')
  t.equal((await b.gw.post('/mj/submit/imagine', { prompt: 'x' }, as('b'))).status, 200, 'another client has its own quota')
})

t.test('docs/tenancy.md SUBMIT_QUOTA_PER_DAY in the embedded store survives a restart; a quota store that fails lets submits through', async (t) => {
  const { tempDataDir } = await import('./helpers/data-dir.js')
  const dataDir = tempDataDir(t)
  const first = await startTenancy(t, { SUBMIT_QUOTA_PER_DAY: '1', DATA_DIR: dataDir })
  await first.submit(as('a'))
  t.equal((await first.gw.post('/mj/submit/imagine', { prompt: 'x' }, as('a'))).status, 429)
  await first.gw.app.close()
  const second = await startTenancy(t, { SUBMIT_QUOTA_PER_DAY: '1', DATA_DIR: dataDir }, first.sim.url)
  const again = await second.gw.post('/mj/submit/imagine', { prompt: 'x' }, as('a'))
  t.match(again.json, { code: 'MJGW_QUOTA_EXCEEDED' }, 'still over after a restart')
  t.equal((await second.gw.post('/mj/submit/imagine', { prompt: 'x' }, bearer(jwtFor('alice')))).status, 200, 'each JWT user has a quota of its own')

  const broken = await startTenancy(t, { SUBMIT_QUOTA_PER_DAY: '1', REDIS_URL: 'redis://127.0.0.1:1', TASK_OWNERSHIP: 'off' })
  t.equal((await broken.gw.post('/mj/submit/imagine', { prompt: 'x' }, as('a'))).status, 200)
  t.equal((await broken.gw.post('/mj/submit/imagine', { prompt: 'x' }, as('a'))).status, 200, 'a quota outage stops no team')
  t.ok((sample((await broken.gw.call('GET', '/metrics')).text, 'mj_gateway_tenancy_store_errors_total', { store: 'redis' }) ?? 0) >= 2, 'counted')
})
