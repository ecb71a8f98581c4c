/**
 * HIT_LANE: `on` (the default) puts the hit lane ahead of Fastify; `off` is a diagnostic in which every request goes
 * through Fastify, with the same answers.
 */
import t from 'tap'
import Fastify from 'fastify'
import { loadConfig } from '../src/config.js'
import { taskBody } from '../src/demo/simulated-upstream.js'
import { send } from './helpers/net.js'
import { sample, startGateway } from './helpers/gateway.js'
import authPlugin from '../src/plugins/client-auth.js'
import rateLimitPlugin from '../src/plugins/rate-limit.js'
import { ClientKeyTable } from '../src/clients/client-keys.js'
import { RateLimitCounter } from '../src/rate-limit/counter.js'

t.test('HIT_LANE is on unless set to off; anything else stops start-up naming it', async (t) => {
  // the environment's own HIT_LANE (the suite may run with HIT_LANE=off) reaches loadConfig too: put it aside
  const outer = process.env['HIT_LANE']
  delete process.env['HIT_LANE']
  t.teardown(() => {
    if (outer !== undefined) process.env['HIT_LANE'] = outer
  })
  t.equal(loadConfig({ UPSTREAM_API_KEY: 'k' }).hitLane, 'on')
  t.equal(loadConfig({ UPSTREAM_API_KEY: 'k', HIT_LANE: 'off' }).hitLane, 'off')
  t.throws(() => loadConfig({ UPSTREAM_API_KEY: 'k', HIT_LANE: 'maybe' }), /HIT_LANE/)
})

t.test('HIT_LANE=off: a fresh hit is answered by the Fastify route, with the same headers, metrics and shedding wiring', async (t) => {
  const env = { HIT_LANE: 'off', CORS_ORIGINS: 'https://app.example', EVENT_LOOP_MAX_DELAY_MS: '1000' }
  const gw = await startGateway(t, env)
  t.equal(gw.app.hitLane, undefined, 'no lane')
  gw.upstream.enqueue({ kind: 'json', body: taskBody('OFF1', 'SUCCESS') })
  t.equal((await gw.fetchTask('OFF1')).headers['x-cache'], 'MISS')
  const hit = await send('GET', `${gw.url}/mj/task/OFF1/fetch`, { headers: { origin: 'https://app.example' } })
  t.equal(hit.status, 200)
  t.equal(hit.headers['x-cache'], 'HIT')
  t.match(hit.headers['cache-control'], /^private, max-age=\d+$/)
  t.equal(hit.headers['access-control-allow-origin'], 'https://app.example')
  t.equal(hit.headers['x-ratelimit-remaining'], '598')
  t.equal(hit.headers['x-content-type-options'], 'nosniff')
  t.equal(gw.upstream.calls, 1)
  const text = await gw.metrics()
  t.equal(sample(text, 'mj_gateway_cache_lookups_total', { result: 'hit' }), 1)
  t.equal(sample(text, 'mj_gateway_http_requests_total', { method: 'GET', route: '/mj/task/:id/fetch', status_code: '200' }), 2)

  // no load shedding here: a lagging test machine would send the request past the lane to the shedding check
  const on = await startGateway(t, { ...env, HIT_LANE: 'on', EVENT_LOOP_MAX_DELAY_MS: '0' })
  on.upstream.enqueue({ kind: 'json', body: taskBody('OFF1', 'SUCCESS') })
  await on.fetchTask('OFF1')
  const laneHit = await send('GET', `${on.url}/mj/task/OFF1/fetch`, { headers: { origin: 'https://app.example' } })
  t.same(Object.keys(laneHit.headers), Object.keys(hit.headers), 'the lane sends the same header names in the same order')
  t.equal(on.app.hitLane?.answered, 1)
})

t.test('a rate-limit store in trouble: the Fastify route serves the request unlimited, without x-ratelimit-*', async (t) => {
  const app = Fastify()
  const table = new ClientKeyTable({ clientKeys: [] })
  const counter = new RateLimitCounter({ incr: (_key, cb) => cb(new Error('store down')) }, 1)
  await app.register(authPlugin, { table })
  await app.register(rateLimitPlugin, { table, counter })
  app.get('/x', async () => ({ ok: true }))
  t.teardown(() => app.close())
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ method: 'GET', url: '/x' })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-ratelimit-limit'], undefined)
  }
})
