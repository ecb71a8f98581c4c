/**
 * The miss path with a second (shared) tier behind the in-process cache, through the SharedTier seam
 * (the Redis implementation is tested on its own): docs/headers.md §2 (a HIT from either tier), docs/metrics.md §3 (hit_shared).
 */
import t, { type Test } from 'tap'
import { TaskCache } from '../src/cache/task-cache.js'
import { loadConfig } from '../src/config.js'
import { GatewayMetrics } from '../src/metrics/gateway-metrics.js'
import { cacheControlFor } from '../src/cache/cache-control.js'
import { TaskService, type Share, type SharedBegin, type SharedTier } from '../src/tasks/fetch-service.js'
import { UpstreamClient } from '../src/upstream/client.js'
import { startSimulatedUpstream, taskBody } from '../src/demo/simulated-upstream.js'
import { UPSTREAM_KEY, sample } from './helpers/gateway.js'

class MemoryTier implements SharedTier {
  readonly entries = new Map<string, { body: Buffer; ttlMs: number; terminal: boolean }>()
  async begin(id: string): Promise<SharedBegin> {
    const e = this.entries.get(id)
    return e === undefined ? { kind: 'go', token: undefined } : { kind: 'hit', body: e.body, keep: { terminal: e.terminal, ttlMs: e.ttlMs }, from: 'tier' }
  }
  finish(id: string, _token: string | undefined, share: Share | undefined): void {
    if (share !== undefined && share.kind !== 'handoff') this.entries.set(id, { body: share.body, ttlMs: share.ttlMs, terminal: share.kind === 'terminal' })
  }
  set(id: string, body: Buffer, ttlMs: number): void {
    this.entries.set(id, { body, ttlMs, terminal: true })
  }
}

async function setup(t: Test) {
  const upstream = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => upstream.close())
  const config = loadConfig({ UPSTREAM_API_KEY: UPSTREAM_KEY, UPSTREAM_BASE_URL: upstream.url, CACHE_TTL_SECONDS: '600', REDIS_URL: 'redis://127.0.0.1:1' })
  const cache = new TaskCache({ maxBytes: 1_000_000, staleIfErrorMs: 0 })
  const metrics = new GatewayMetrics({ cache: { entries: () => cache.entries, bytes: () => cache.bytes }, redis: true })
  const client = new UpstreamClient(config.upstream, metrics)
  t.teardown(() => client.close())
  const shared = new MemoryTier()
  const service = new TaskService(config.cache, cache, client, metrics, shared)
  return { upstream, cache, metrics, shared, service }
}

t.test('docs/headers.md §2, docs/metrics.md §3 a hit in the shared tier is a HIT (counted as hit_shared only), needs no upstream call, and fills the process tier', async (t) => {
  const { upstream, cache, metrics, shared, service } = await setup(t)
  const body = Buffer.from(JSON.stringify(taskBody('S1', 'SUCCESS')))
  shared.set('S1', body, 90_500)
  const [a, b] = await Promise.all([service.fetch('S1'), service.fetch('S1')])
  t.match(a, { kind: 'task', cache: 'HIT', cacheControl: 'private, max-age=90' })
  t.match(b, { kind: 'task', cache: 'HIT' }, 'a request coalesced onto a shared hit is a HIT too')
  t.equal(upstream.calls, 0)
  t.same(cache.fresh('S1', Date.now())?.body, body, 'now in the process tier')
  const m = await metrics.registry.metrics()
  t.equal(sample(m, 'mj_gateway_cache_lookups_total', { result: 'hit_shared' }), 2)
  t.equal(sample(m, 'mj_gateway_cache_lookups_total', { result: 'hit' }), 0, 'not also counted as hit')
  t.equal(sample(m, 'mj_gateway_redis_up'), 0, 'redis_up exists (0 until the tier says otherwise)')
})

t.test('docs/caching.md §7 a shared miss goes upstream; terminal tasks are shared with their TTL, live ones for POLL_CACHE_MS', async (t) => {
  const { upstream, shared, service } = await setup(t)
  upstream.enqueue({ kind: 'json', body: taskBody('T1', 'SUCCESS') }, { kind: 'json', body: taskBody('L1', 'IN_PROGRESS') })
  t.match(await service.fetch('T1'), { kind: 'task', cache: 'MISS' })
  t.match(await service.fetch('L1'), { kind: 'task', cache: 'MISS', cacheControl: 'no-cache' })
  t.same([...shared.entries.keys()].sort(), ['L1', 'T1'])
  const ttl = shared.entries.get('T1')?.ttlMs ?? 0
  t.ok(ttl > 599_000 && ttl <= 600_000, `written with the terminal TTL (${ttl} ms)`)
  t.match(shared.entries.get('L1'), { ttlMs: 1000, terminal: false }, 'live: POLL_CACHE_MS')
  t.equal(upstream.calls, 2)
})

t.test('cache-control for a cached terminal task and for everything else', async (t) => {
  t.equal(cacheControlFor(42), 'private, max-age=42')
  t.equal(cacheControlFor(0), 'private, max-age=0')
  t.equal(cacheControlFor(undefined), 'no-cache')
})
