import t from 'tap'
import { TaskCache, etagOf } from '../src/cache/task-cache.js'
import { fingerprint, loadConfig } from '../src/config.js'
import { ManualClock } from './helpers/manual-clock.js'

const NOW = 1_730_621_826_053
const buf = (s: string) => Buffer.from(s)

t.test('docs/caching.md §3 an entry is fresh until freshUntil, then only a stand-in for STALE_IF_ERROR_SECONDS', async (t) => {
  const cache = new TaskCache({ maxBytes: 1000, staleIfErrorMs: 60_000 })
  const stored = cache.store('T1', buf('{"id":"T1"}'), etagOf(buf('{"id":"T1"}')), false, 1000, NOW)
  t.same(stored && { terminal: stored.terminal, storedAt: stored.storedAt, freshUntil: stored.freshUntil }, { terminal: false, storedAt: NOW, freshUntil: NOW + 1000 })
  t.equal(cache.fresh('T1', NOW)?.body.toString(), '{"id":"T1"}')
  t.equal(cache.fresh('T1', NOW + 999)?.etag, etagOf(buf('{"id":"T1"}')))
  t.equal(cache.fresh('T1', NOW + 1000), undefined, 'not fresh at freshUntil')
  t.equal(cache.lastKnown('T1', NOW + 1000)?.body.toString(), '{"id":"T1"}', 'still a stand-in')
  t.equal(cache.lastKnown('T1', NOW + 59_999)?.storedAt, NOW)
  t.equal(cache.lastKnown('T1', NOW + 60_000), undefined, 'too old to stand in')
  t.equal(cache.fresh('T2', NOW), undefined)
  t.equal(cache.lastKnown('T2', NOW), undefined)
})

t.test('docs/caching.md §3 POLL_CACHE_MS=0 with STALE_IF_ERROR_SECONDS=0 stores nothing (and forgets an older entry)', async (t) => {
  const cache = new TaskCache({ maxBytes: 1000, staleIfErrorMs: 0 })
  t.ok(cache.store('T1', buf('a'), '"a"', false, 500, NOW), 'fresh for 500 ms')
  t.equal(cache.entries, 1)
  t.equal(cache.store('T1', buf('b'), '"b"', false, 0, NOW), undefined)
  t.equal(cache.entries, 0, 'the older entry is gone too')
  t.equal(cache.lastKnown('T1', NOW), undefined)
})

t.test('docs/caching.md §5 freshMs 0 with a stale window keeps the entry only as a stand-in', async (t) => {
  const cache = new TaskCache({ maxBytes: 1000, staleIfErrorMs: 5000 })
  cache.store('T1', buf('a'), '"a"', false, 0, NOW)
  t.equal(cache.fresh('T1', NOW), undefined, 'never fresh')
  t.equal(cache.lastKnown('T1', NOW + 100)?.body.toString(), 'a')
})

t.test('docs/caching.md §6 bounded by CACHE_MAX_BYTES in body bytes; the least recently used goes first', async (t) => {
  let evictions = 0
  const cache = new TaskCache({ maxBytes: 300, staleIfErrorMs: 60_000, onEvict: () => evictions++ })
  const body = (c: string) => Buffer.alloc(100, c)
  cache.store('A', body('a'), '"a"', true, 60_000, NOW)
  cache.store('B', body('b'), '"b"', true, 60_000, NOW)
  cache.store('C', body('c'), '"c"', true, 60_000, NOW)
  t.equal(cache.entries, 3)
  t.equal(cache.bytes, 300)
  t.ok(cache.fresh('A', NOW), 'A is now the most recently used')
  cache.store('D', body('d'), '"d"', true, 60_000, NOW)
  t.equal(evictions, 1)
  t.equal(cache.fresh('B', NOW), undefined, 'B, the least recently used, went')
  t.equal(cache.lastKnown('B', NOW), undefined, 'and cannot stand in either')
  t.ok(cache.fresh('A', NOW) && cache.fresh('C', NOW) && cache.fresh('D', NOW))
  t.equal(cache.bytes, 300)

  // Replacing and deleting are not evictions.
  cache.store('A', body('A'), '"A"', true, 60_000, NOW)
  cache.delete('C')
  t.equal(evictions, 1)
  t.equal(cache.entries, 2)

  // A body larger than the whole bound is not kept, and evicts nothing.
  cache.store('HUGE', Buffer.alloc(301), '"h"', true, 60_000, NOW)
  t.equal(cache.fresh('HUGE', NOW), undefined)
  t.equal(evictions, 1)
  t.equal(cache.entries, 2)

  // An empty body still counts (lru-cache refuses size 0).
  cache.store('E', Buffer.alloc(0), '"e"', false, 60_000, NOW)
  t.equal(cache.bytes, 201)

  cache.clear()
  t.equal(cache.entries, 0)
  t.equal(cache.bytes, 0)
})

t.test('docs/caching.md §6 without onEvict the bound still holds', async (t) => {
  const cache = new TaskCache({ maxBytes: 10, staleIfErrorMs: 0 })
  cache.store('A', Buffer.alloc(6), '"a"', true, 60_000, NOW)
  cache.store('B', Buffer.alloc(6), '"b"', true, 60_000, NOW)
  t.equal(cache.entries, 1)
  t.ok(cache.fresh('B', NOW))
})

t.test('docs/caching.md §4 single-flight: concurrent callers share one load, success or failure', async (t) => {
  const cache = new TaskCache({ maxBytes: 1000, staleIfErrorMs: 0 })
  let loads = 0
  let release: (v: string) => void = () => undefined
  const load = () => {
    loads++
    return new Promise<string>((resolve) => (release = resolve))
  }
  const first = cache.flight('T1', load)
  const second = cache.flight('T1', load)
  const other = cache.flight('T2', async () => 'other')
  t.equal(first.leader, true)
  t.equal(second.leader, false)
  t.equal(other.leader, true, 'another id has its own flight')
  t.equal(loads, 1)
  release('done')
  t.same(await Promise.all([first.promise, second.promise, other.promise]), ['done', 'done', 'other'])

  const after = cache.flight('T1', async () => 'again')
  t.equal(after.leader, true, 'a finished flight is forgotten')
  t.equal(await after.promise, 'again')

  const failing = cache.flight('T1', async () => {
    throw new Error('upstream down')
  })
  const joined = cache.flight('T1', async () => 'never')
  await t.rejects(failing.promise, /upstream down/)
  await t.rejects(joined.promise, /upstream down/, 'waiters share the failure')
  const retry = cache.flight('T1', async () => 'recovered')
  t.equal(retry.leader, true, 'a failed flight is forgotten too')
  t.equal(await retry.promise, 'recovered')
})

t.test('etag: a strong validator of the body bytes', async (t) => {
  t.match(etagOf(buf('{"id":"T1"}')), /^"[A-Za-z0-9_-]+"$/)
  t.equal(etagOf(buf('x')), etagOf(buf('x')))
  t.not(etagOf(buf('{"id":"T1"}')), etagOf(buf('{"id":"T1" }')), 'one byte differs')
})

t.test('docs/caching.md §7 the cache namespace is a fingerprint of the upstream key, never the key', async (t) => {
  const a = loadConfig({ UPSTREAM_API_KEY: 'sk-key-A-secret' }).upstream.keyFingerprint
  const b = loadConfig({ UPSTREAM_API_KEY: 'sk-key-B-secret' }).upstream.keyFingerprint
  t.not(a, b, 'different keys, different namespaces')
  t.equal(a, fingerprint('sk-key-A-secret'), 'stable')
  t.match(a, /^[0-9a-f]{12}$/)
  t.notMatch(a, 'secret')
})

t.test('docs/caching.md §5 a terminal entry never stands in past its own life (its imageUrl may have expired)', async (t) => {
  const clock = new ManualClock(NOW)
  const cache = new TaskCache({ maxBytes: 1000, staleIfErrorMs: 60_000, clock })
  cache.store('T1', buf('{"id":"T1"}'), '"t"', true, 1000, NOW)
  cache.store('L1', buf('{"id":"L1"}'), '"l"', false, 1000, NOW)
  t.ok(cache.lastKnown('T1', NOW + 999), 'a stand-in while it lives')
  clock.advance(999)
  t.ok(cache.lastKnown('T1', NOW + 999), 'still held by the cache 1 ms before its TTL')
  clock.advance(2)
  t.equal(cache.lastKnown('T1', NOW + 1001), undefined, 'gone with its TTL')
  t.ok(cache.lastKnown('L1', NOW + 1001), 'a live entry stays a stand-in for STALE_IF_ERROR_SECONDS')
})

t.test('docs/metrics.md §3 the entries and bytes gauges leave out expired entries, and their removal is not an eviction', async (t) => {
  let evictions = 0
  const clock = new ManualClock(NOW)
  const cache = new TaskCache({ maxBytes: 1000, staleIfErrorMs: 0, onEvict: () => evictions++, clock })
  cache.store('T1', buf('0123456789'), '"t"', true, 30, clock.now())
  t.equal(cache.entries, 1)
  t.equal(cache.bytes, 10)
  clock.advance(31)
  t.equal(cache.entries, 0)
  t.equal(cache.bytes, 0)
  t.equal(evictions, 0)
})

t.test('the cache judges time by its clock: now() is the clock given, else Date.now', async (t) => {
  const clock = new ManualClock(NOW)
  t.equal(new TaskCache({ maxBytes: 10, staleIfErrorMs: 0, clock }).now(), NOW)
  const before = Date.now()
  const real = new TaskCache({ maxBytes: 10, staleIfErrorMs: 0 }).now()
  t.ok(real >= before && real <= Date.now(), 'the real time by default')
})
