/**
 * An upstream that hangs is always a timeout (docs/operations-resilience.md, "Upstream hang"): 504
 * MJGW_UPSTREAM_TIMEOUT, counted as outcome="timeout", never 502 UNREACHABLE from the HTTP client's own timers.
 */
import t from 'tap'
import { sample, startGateway } from './helpers/gateway.js'

t.test('a hanging upstream answers 504 MJGW_UPSTREAM_TIMEOUT every time and counts outcome="timeout"', async (t) => {
  // 1497 ms = 3 ticks of undici's coarse timer (499 ms): its header timeout, were it the budget, fires up to a tick early.
  const gw = await startGateway(t, { UPSTREAM_TIMEOUT_MS: '1497', UPSTREAM_RETRIES: '0', STALE_IF_ERROR_SECONDS: '0', RATE_LIMIT_PER_MINUTE: '0' })
  gw.upstream.setHandler(() => ({ kind: 'hang' }))
  const rounds = 2
  const perRound = 8
  const statuses: number[] = []
  const codes: unknown[] = []
  for (let r = 0; r < rounds; r++) {
    const results = await Promise.all(Array.from({ length: perRound }, (_, i) => gw.fetchTask(`hang-${r}-${i}`)))
    for (const res of results) {
      statuses.push(res.status)
      codes.push((res.json() as { code?: unknown }).code)
    }
  }
  t.same(new Set(statuses), new Set([504]), 'every answer 504')
  t.same(new Set(codes), new Set(['MJGW_UPSTREAM_TIMEOUT']))
  const m = await gw.metrics()
  t.equal(sample(m, 'mj_gateway_upstream_requests_total', { outcome: 'timeout' }), rounds * perRound, 'every attempt counted as a timeout')
  t.equal(sample(m, 'mj_gateway_upstream_requests_total', { outcome: 'error' }), 0, 'none as a connection error')
})
