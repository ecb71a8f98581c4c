import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startGateway, CLIENT_AUTH, CLIENT_TOKEN, UPSTREAM_KEY } from './helpers/gateway.js'

/** as these tests were written: no rate limit unless a test sets one, info logs */
const PASSTHROUGH_ENV = { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'info' }

interface Task {
  id: string
  status: string
  buttons: Array<{ customId: string; label: string }>
}

t.test('docs/http-api.md §3 the whole flow through the gateway (npm run demo): submit, poll, finished, served from cache, act on it, list', async (t) => {
  const gw = await startGateway(
    t,
    { ...PASSTHROUGH_ENV, CLIENT_KEYS: `demo:${CLIENT_TOKEN}`, POLL_CACHE_MS: '0' },
    { upstream: { apiKey: UPSTREAM_KEY, stepMs: 40, failureRatio: 0, inventUnknownTasks: false } }
  )
  const sim = gw.upstream

  const submitted = await gw.post('/mj/submit/imagine', { prompt: 'a lighthouse at dusk --v 6.1', notifyHook: 'http://evil' }, CLIENT_AUTH)
  t.equal(submitted.status, 200)
  const id = (submitted.json() as { result: string }).result
  t.match(id, /^\d+$/)

  let task: Task | undefined
  const seen: string[] = []
  for (let i = 0; i < 200 && task?.status !== 'SUCCESS'; i++) {
    const r = await gw.request('GET', `/mj/task/${id}/fetch`, { headers: CLIENT_AUTH })
    t.equal(r.headers['x-cache'], 'MISS')
    task = r.json() as Task
    seen.push(task.status)
    if (task.status !== 'SUCCESS') await sleep(20)
  }
  t.equal(task?.status, 'SUCCESS', `polled through ${[...new Set(seen)].join(' → ')}`)
  const cached = await gw.request('GET', `/mj/task/${id}/fetch`, { headers: CLIENT_AUTH })
  t.equal(cached.headers['x-cache'], 'HIT', 'the finished task is served from the cache')

  const upscale = task?.buttons.find((b) => b.label === 'U1')?.customId
  const action = await gw.post('/mj/submit/action', { taskId: id, customId: upscale }, CLIENT_AUTH)
  t.equal((action.json() as { code: number }).code, 1, 'submit/action accepted')
  const child = (action.json() as { result: string }).result
  const seed = await gw.request('GET', `/mj/task/${id}/image-seed`, { headers: CLIENT_AUTH })
  t.match(seed.json(), { code: 1, result: /^\d+$/ })

  const before = sim.stats.byRoute['POST /mj/task/list-by-condition'] ?? 0
  const listed = await gw.post('/mj/task/list-by-condition', { ids: [child, id, '1700000000000999'] }, CLIENT_AUTH)
  t.equal(listed.headers['x-cache-hits'], '1')
  t.same((listed.json() as Task[]).map((x) => x.id), [child, id])
  t.equal(sim.stats.byRoute['POST /mj/task/list-by-condition'], before + 1)
  t.equal(sim.lastRequest?.headers.authorization, `Bearer ${UPSTREAM_KEY}`)
  t.same(sim.stats.byRoute['GET /mj/task/list'], undefined, 'the full task list was never asked for')
})
