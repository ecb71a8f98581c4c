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
