import t from 'tap'
import { TaskCache } from '../src/cache/task-cache.js'
import { GatewayMetrics } from '../src/metrics/gateway-metrics.js'
import { TaskListService } from '../src/tasks/list-service.js'
import type { TerminalStore } from '../src/tasks/list-service.js'
import { UpstreamClient } from '../src/upstream/client.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'

const rules = { ttlSeconds: 3600, urlExpiryMarginSeconds: 300, pollCacheMs: 1000 }
const body = (id: string, status: string): string => `{"id":"${id}","status":"${status}","imageUrl":""}`

/** A shared tier in a Map; `get` of `broken` rejects, as a Redis outage might. */
class MapTier implements TerminalStore {
  readonly data = new Map<string, { body: Buffer; ttlMs: number }>()
  async get(id: string): Promise<{ body: Buffer; ttlMs: number } | undefined> {
    if (id === 'broken') throw new Error('redis down')
    return this.data.get(id)
  }
  set(id: string, b: Buffer, ttlMs: number): void {
    this.data.set(id, { body: b, ttlMs })
  }
}

t.test('docs/caching.md §9 with a shared tier: ids cached there count as cached (hit_shared), are kept locally, and terminal upstream results are shared', async (t) => {
  const up = await startSimulatedUpstream({ handler: () => ({ kind: 'raw', body: `[${body('U1', 'SUCCESS')},${body('L1', 'IN_PROGRESS')}]` }) })
  t.teardown(() => up.close())
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 })
  const metrics = new GatewayMetrics({ cache: { entries: () => cache.entries, bytes: () => cache.bytes }, redis: true })
  const client = new UpstreamClient(
    { baseUrl: up.url, apiKey: 'k', keyFingerprint: 'f', authStyle: 'bearer', timeoutMs: 2000, retries: 0, maxBodyBytes: 1 << 20 },
    metrics
  )
  t.teardown(() => client.close())
  const tier = new MapTier()
  tier.set('S1', Buffer.from(body('S1', 'FAILURE')), 60_000)
  const service = new TaskListService(rules, cache, client, metrics, tier)

  const r = await service.list(['S1', 'U1', 'broken', 'L1'])
  t.equal(r.kind, 'list')
  if (r.kind !== 'list') return
  t.equal(r.hits, 1, 'S1 came from the shared tier')
  t.equal(r.body.toString(), `[${body('S1', 'FAILURE')},${body('U1', 'SUCCESS')},${body('L1', 'IN_PROGRESS')}]`)
  t.same(JSON.parse(up.requests[0]?.body.toString() ?? ''), { ids: ['U1', 'broken', 'L1'] }, 'a failing shared lookup is a miss')
  t.equal(cache.fresh('S1', Date.now())?.terminal, true, 'the shared hit is now in the local tier')
  t.equal(tier.data.get('U1')?.body.toString(), body('U1', 'SUCCESS'), 'the terminal upstream result is shared')
  t.notOk(tier.data.has('L1'), 'a live one is not')
  const text = await metrics.registry.metrics()
  t.match(text, /^mj_gateway_cache_lookups_total\{result="hit_shared"\} 1$/m)
  t.match(text, /^mj_gateway_cache_lookups_total\{result="miss"\} 3$/m)

  const again = await service.list(['U1', 'S1'])
  t.equal(again.kind === 'list' && again.hits, 2, 'both now local')
  t.equal(up.requests.length, 1)
})
