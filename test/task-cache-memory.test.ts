import t from 'tap'
import { TaskCache } from '../src/cache/task-cache.js'

const NOW = 1_700_000_000_000

t.test('§5.6 a cached body holds exactly its own bytes, not the larger read it arrived in', async (t) => {
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 60_000 })
  // what undici hands over: a view into a socket read that also holds the status line and headers
  const read = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: 24\r\n\r\n{"id":"1","status":"OK"}`)
  const view = read.subarray(read.length - 24)
  const entry = cache.store('1', view, '"e"', true, 1000, NOW)
  t.ok(entry)
  t.equal(entry?.body.toString(), '{"id":"1","status":"OK"}', 'same bytes')
  t.equal(entry?.body.buffer.byteLength, 24, 'an allocation of exactly the body size')
  t.not(entry?.body.buffer, read.buffer, 'the socket read is not retained')
  t.equal(cache.bytes, 24)
})

t.test('a body that already owns exactly its memory is stored as is, without a copy', async (t) => {
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 60_000 })
  const own = Buffer.allocUnsafeSlow(5)
  own.write('{"a":')
  t.equal(cache.store('2', own, '"e"', true, 1000, NOW)?.body, own)
})
