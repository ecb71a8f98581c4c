/**
 * Ownership (docs/tenancy.md §2) on the routes that came with push (docs/push.md §1) and images (docs/images.md §2):
 * another client's task is an unknown task there too, and upstream is never asked.
 */
import t, { type Test } from 'tap'
import { as, startTenancy, type Reply } from './helpers/tenancy.js'
import { sample } from './helpers/gateway.js'

function isNotFound(t: Test, r: Reply, id: string, what: string): void {
  t.equal(r.status, 404, `${what}: 404`)
  t.same(r.json, { statusCode: 404, code: 'MJGW_TASK_NOT_FOUND', error: 'Not Found', message: `task ${id} not found upstream` }, `${what}: the unknown-id body`)
}

t.test('docs/tenancy.md §2 another client subscribing to a task’s events gets the unknown-id 404 before any stream opens; its owner gets the stream', async (t) => {
  const tn = await startTenancy(t)
  const id = await tn.submit(as('a'))
  const calls = tn.upstreamCalls()
  isNotFound(t, await tn.gw.call('GET', `/mj/task/${id}/events`, { headers: as('b') }), id, 'one task')
  isNotFound(t, await tn.gw.call('GET', `/mj/tasks/events?ids=${id}`, { headers: as('b') }), id, 'a list of tasks')
  t.equal(tn.upstreamCalls(), calls, 'upstream was never asked')
  const metrics = (await tn.gw.call('GET', '/metrics')).text
  t.equal(sample(metrics, 'mj_gateway_ownership_denied_total', { route: '/mj/task/:id/events' }), 1, 'counted under its route')
  t.equal(sample(metrics, 'mj_gateway_ownership_denied_total', { route: '/mj/tasks/events' }), 1)

  const own = await tn.gw.call('GET', `/mj/task/${id}/events`, { headers: as('a') })
  t.equal(own.status, 200, 'the owner subscribes')
  t.match(own.headers['content-type'], /^text\/event-stream/)
  t.match(own.text, /event: end/, 'and follows the task to its end')
})

t.test('docs/tenancy.md §2 another client asking for a task’s image gets the unknown-id 404; upstream is never asked', async (t) => {
  const tn = await startTenancy(t)
  const id = await tn.submit(as('a'))
  const calls = tn.upstreamCalls()
  isNotFound(t, await tn.gw.call('GET', `/mj/image/${id}`, { headers: as('b') }), id, 'the image')
  isNotFound(t, await tn.gw.call('GET', `/mj/image/${id}/0`, { headers: as('b') }), id, 'an image of imageUrls')
  t.equal(tn.upstreamCalls(), calls, 'upstream was never asked')
  const metrics = (await tn.gw.call('GET', '/metrics')).text
  t.equal(sample(metrics, 'mj_gateway_ownership_denied_total', { route: '/mj/image/:id' }), 1)
  t.equal(sample(metrics, 'mj_gateway_ownership_denied_total', { route: '/mj/image/:id/:n' }), 1)
})
