import t from 'tap'
import { TaskCache } from '../src/cache/task-cache.js'
import { BodySlabs, OWN_BUFFER_ABOVE, SLAB_BYTES, type BodyHolder } from '../src/cache/body-slabs.js'

const NOW = 1_700_000_000_000

t.test('docs/caching.md §6 a cached body is a copy, not the larger read it arrived in', async (t) => {
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 60_000 })
  // what undici hands over: a view into a socket read that also holds the status line and headers
  const read = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: 24\r\n\r\n{"id":"1","status":"OK"}`)
  const view = read.subarray(read.length - 24)
  const entry = cache.store('1', view, '"e"', true, 1000, NOW)
  t.equal(entry?.body.toString(), '{"id":"1","status":"OK"}', 'same bytes')
  t.not(entry?.body.buffer, read.buffer, 'the socket read is not retained')
  read.fill(0)
  t.equal(cache.fresh('1', NOW)?.body.toString(), '{"id":"1","status":"OK"}', 'unaffected by the read being reused')
  t.equal(cache.bytes, 24)
})

const holder = (): BodyHolder => ({ body: Buffer.alloc(0), slab: undefined })
const body = (n: number, fill: string): Buffer => Buffer.alloc(n, fill)

t.test('small bodies share slabs; a slab is freed when its last body goes', async (t) => {
  const slabs = new BodySlabs()
  const n = Math.floor(SLAB_BYTES / 3000) // bodies that fit one slab
  const hs = Array.from({ length: n + 1 }, holder)
  hs.forEach((h, i) => slabs.put(h, body(3000, String.fromCharCode(97 + (i % 26)))))
  t.equal(slabs.slabs, 2, 'the last body opened a second slab')
  t.equal(hs[0]?.slab, hs[1]?.slab)
  t.not(hs[0]?.slab, hs[n]?.slab)
  const firstSlab = hs[1]?.slab
  slabs.release(hs[0] as BodyHolder)
  t.equal(hs[1]?.slab, firstSlab, 'a slab still mostly live is left as it is')
  for (const h of hs.slice(1, n)) slabs.release(h)
  t.equal(slabs.slabs, 1, 'the first slab, emptied, is freed')
  t.equal(hs[n]?.body.toString(), 'a'.repeat(3000).replace(/a/g, String.fromCharCode(97 + (n % 26))))
  slabs.release(hs[1] as BodyHolder)
  t.equal(slabs.slabs, 1, 'releasing twice changes nothing')
})

t.test('a mostly dead slab is compacted: its live bodies move, byte for byte, and old views stay valid', async (t) => {
  const slabs = new BodySlabs()
  const n = Math.floor(SLAB_BYTES / 1000)
  const hs = Array.from({ length: n + 1 }, holder)
  hs.forEach((h, i) => slabs.put(h, body(1000, String.fromCharCode(97 + (i % 26)))))
  const keep = hs[3] as BodyHolder
  const before = keep.body
  const first = keep.slab
  // release all but one body of the first slab, and one more to push it under half
  for (const h of hs.slice(0, n)) if (h !== keep) slabs.release(h)
  t.not(keep.slab, first, 'moved out of the first slab')
  t.equal(keep.body.toString(), 'd'.repeat(1000))
  t.equal(before.toString(), 'd'.repeat(1000), 'a view handed out before is still the same bytes')
  t.equal(slabs.slabs, 1, 'the compacted slab is freed')
})

t.test('the slab being filled is settled when the next one starts: freed if empty, compacted if mostly dead', async (t) => {
  const KB60 = 60 * 1024
  const perSlab = Math.floor(SLAB_BYTES / KB60)
  const slabs = new BodySlabs()
  const first = Array.from({ length: perSlab }, holder)
  first.forEach((h) => slabs.put(h, body(KB60, 'a')))
  for (const h of first) slabs.release(h)
  t.equal(slabs.slabs, 1, 'an emptied slab stays while it is being filled')
  const second = Array.from({ length: perSlab + 1 }, holder)
  second.forEach((h) => slabs.put(h, body(KB60, 'b')))
  t.equal(slabs.slabs, 2, 'the emptied one was freed when the next began; the next is full, a third began')
  const keep = second[0] as BodyHolder
  for (const h of second.slice(1, perSlab)) slabs.release(h)
  t.equal(slabs.slabs, 1, 'the second slab, mostly dead, was compacted into the third')
  t.equal(keep.slab, (second[perSlab] as BodyHolder).slab)
  t.equal(keep.body.toString(), 'b'.repeat(KB60))
})

t.test('bodies above 64 KiB and empty bodies get memory of their own', async (t) => {
  const slabs = new BodySlabs()
  const big = holder()
  slabs.put(big, body(OWN_BUFFER_ABOVE + 1, 'x'))
  t.equal(big.slab, undefined)
  t.equal(big.body.buffer.byteLength, OWN_BUFFER_ABOVE + 1)
  const empty = holder()
  slabs.put(empty, Buffer.alloc(0))
  t.equal(empty.body.length, 0)
  t.equal(slabs.slabs, 0)
  slabs.release(big)
})

t.test('the cache gives a body\'s room back whatever takes the entry out', async (t) => {
  let evicted = 0
  const cache = new TaskCache({ maxBytes: 3 * 100_000, staleIfErrorMs: 0, onEvict: () => evicted++ })
  for (let i = 0; i < 40; i++) cache.store(`k${i}`, body(30_000, 'x'), '"e"', true, 60_000, NOW)
  t.ok(evicted > 0, 'evicted by size')
  cache.store('k39', body(30_000, 'y'), '"e"', true, 60_000, NOW)
  cache.delete('k38')
  cache.clear()
  t.equal(cache.slabs, 1, 'only the slab being filled is left')
  const huge = cache.store('huge', body(40_000, 'h'), '"e"', true, 60_000, NOW)
  t.equal(huge?.body.length, 40_000, 'the entry is handed back')
  const tiny = new TaskCache({ maxBytes: 10, staleIfErrorMs: 0 })
  tiny.store('t', body(20, 'x'), '"e"', true, 60_000, NOW)
  t.equal(tiny.entries, 0, 'a body larger than the cache is not kept')
  t.equal(tiny.slabs, 1, 'its room is given back (only the slab being filled is left)')
})
