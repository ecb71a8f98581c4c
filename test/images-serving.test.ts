import t from 'tap'
import fc from 'fast-check'
import { byteRange } from '../src/http/byte-range.js'
import { startImageGateway } from './helpers/image-gateway.js'

t.test('docs/images.md: Range asks for part of an archived image (206), an unsatisfiable one is 416, If-None-Match is 304', async (t) => {
  const ig = await startImageGateway(t)
  const whole = ig.bytes('rg')
  const size = whole.length
  const full = await ig.image('/mj/image/rg')
  const etag = full.headers['etag'] as string
  t.equal(full.headers['cross-origin-resource-policy'], 'cross-origin', 'other origins may show it')
  t.equal(full.headers['x-content-type-options'], 'nosniff')
  const first = await ig.image('/mj/image/rg', { range: 'bytes=0-9' })
  t.equal(first.status, 206)
  t.same(first.body, whole.subarray(0, 10))
  t.equal(first.headers['content-range'], `bytes 0-9/${size}`)
  t.equal(first.headers['content-length'], '10')
  t.equal(first.headers['etag'], etag)
  t.equal(first.headers['cache-control'], 'private, max-age=31536000, immutable')
  const tail = await ig.image('/mj/image/rg', { range: 'bytes=-5' })
  t.equal(tail.status, 206)
  t.same(tail.body, whole.subarray(size - 5))
  const open = await ig.image('/mj/image/rg', { range: 'bytes=10-' })
  t.same(open.body, whole.subarray(10))
  t.equal(open.headers['content-range'], `bytes 10-${size - 1}/${size}`)
  const beyond = await ig.image('/mj/image/rg', { range: `bytes=${size}-` })
  t.equal(beyond.status, 416)
  t.equal(beyond.headers['content-range'], `bytes */${size}`)
  t.equal(beyond.json()['code'], 'MJGW_RANGE_NOT_SATISFIABLE')
  const several = await ig.image('/mj/image/rg', { range: 'bytes=0-1,4-5' })
  t.equal(several.status, 200, 'several ranges: the whole image')
  t.same(several.body, whole)
  const staleIfRange = await ig.image('/mj/image/rg', { range: 'bytes=0-9', 'if-range': '"other"' })
  t.equal(staleIfRange.status, 200, 'If-Range with another etag: the whole image')
  const goodIfRange = await ig.image('/mj/image/rg', { range: 'bytes=0-9', 'if-range': etag })
  t.equal(goodIfRange.status, 206)
  const notModified = await ig.image('/mj/image/rg', { 'if-none-match': etag })
  t.equal(notModified.status, 304)
  t.equal(notModified.body.length, 0)
  t.equal(notModified.headers['etag'], etag)
  const headRange = await ig.image('/mj/image/rg', { range: 'bytes=0-9' }, 'HEAD')
  t.equal(headRange.status, 206)
  t.equal(headRange.headers['content-length'], '10')
  t.equal(headRange.body.length, 0)
  const bad = await ig.image('/mj/image/bad%20id')
  t.equal(bad.status, 400)
  t.equal(ig.cdn.calls, 1)
})

t.test('docs/images.md: an empty image is served as 200 with no bytes', async (t) => {
  const ig = await startImageGateway(t)
  ig.cdn.handler = () => ({ kind: 'image', bytes: Buffer.alloc(0), contentType: 'image/gif' })
  const res = await ig.image('/mj/image/empty')
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], '0')
  t.equal(res.headers['content-type'], 'image/gif')
  t.equal((await ig.image('/mj/image/empty', { range: 'bytes=-1' })).status, 416)
})

t.test('byte ranges: the answer always lies within the image, or says why not (fast-check)', async (t) => {
  fc.assert(
    fc.property(fc.nat(10_000), fc.oneof(fc.string(), fc.tuple(fc.option(fc.nat(20_000)), fc.option(fc.nat(20_000))).map(([a, b]) => `bytes=${a ?? ''}-${b ?? ''}`)), (size, header) => {
      const r = byteRange(header, size)
      if (r.kind !== 'partial') return true
      return r.start >= 0 && r.start <= r.end && r.end < size
    })
  )
  t.same(byteRange(undefined, 10), { kind: 'full' })
  t.same(byteRange('bytes=-', 10), { kind: 'full' })
  t.same(byteRange('bytes=5-2', 10), { kind: 'full' })
  t.same(byteRange('items=0-1', 10), { kind: 'full' })
  t.same(byteRange('bytes=0-0', 0), { kind: 'unsatisfiable' })
  t.same(byteRange('bytes=-0', 10), { kind: 'unsatisfiable' })
  t.same(byteRange('bytes=-20', 10), { kind: 'partial', start: 0, end: 9 })
  t.same(byteRange('bytes=2-200', 10), { kind: 'partial', start: 2, end: 9 })
})
