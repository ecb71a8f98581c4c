/**
 * RATE_LIMIT_PER_MINUTE's counter (src/rate-limit/counter.ts) and its memory store: fixed windows, the x-ratelimit-*
 * values, and one count per request whoever asks (the hit lane, then the Fastify route).
 */
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import t from 'tap'
import { MemoryStore } from '../src/rate-limit/memory-store.js'
import { RateLimitCounter, rateLimitKey, type Admission, type Store } from '../src/rate-limit/counter.js'

const request = (): IncomingMessage => new IncomingMessage(new Socket())

function admit(counter: RateLimitCounter, req: IncomingMessage, key = 'k'): Admission | null {
  let seen: Admission | null | undefined
  counter.admit(req, () => key, (a) => (seen = a))
  if (seen === undefined) throw new Error('the memory store answers at once')
  return seen
}

t.test('a fixed window: the count, what remains, the reset, and over the limit', async (t) => {
  const counter = new RateLimitCounter(new MemoryStore(), 2)
  const first = admit(counter, request())
  t.same(first?.headers, ['x-ratelimit-limit', 2, 'x-ratelimit-remaining', 1, 'x-ratelimit-reset', 60])
  t.equal(first?.over, false)
  t.equal(admit(counter, request())?.over, false)
  const third = admit(counter, request())
  t.equal(third?.over, true)
  t.same(third?.headers.slice(0, 4), ['x-ratelimit-limit', 2, 'x-ratelimit-remaining', 0], 'never below 0')
  t.ok((third?.resetSeconds ?? 0) >= 1 && (third?.resetSeconds ?? 0) <= 60)
  t.equal(admit(counter, request(), 'other')?.over, false, 'another key has its own window')
})

t.test('a window starts again once it is over', async (t) => {
  const counter = new RateLimitCounter(new MemoryStore(), 1, 40)
  t.equal(admit(counter, request())?.over, false)
  t.equal(admit(counter, request())?.over, true)
  await new Promise((r) => setTimeout(r, 80))
  t.equal(admit(counter, request())?.over, false)
})

t.test('a request is counted once, however often it is asked about', async (t) => {
  const counter = new RateLimitCounter(new MemoryStore(), 5)
  const req = request()
  let keys = 0
  const a = admit(counter, req, 'k')
  counter.admit(req, () => String(++keys), () => undefined)
  t.equal(admit(counter, req, 'k'), a, 'the same verdict')
  t.equal(keys, 0, 'not even its key is worked out again')
  t.same(admit(counter, request())?.headers[3], 3, 'the next request is the second count')
})

t.test('a store that fails: null, remembered for the request, and the next request is counted', async (t) => {
  let fail = true
  const memory = new MemoryStore()
  const store: Store = { incr: (key, cb, windowMs) => (fail ? cb(new Error('down')) : memory.incr(key, cb, windowMs)) }
  const counter = new RateLimitCounter(store, 5)
  const req = request()
  t.equal(admit(counter, req), null)
  fail = false
  t.equal(admit(counter, req), null, 'the same request is not counted again')
  t.equal(admit(counter, request())?.headers[3], 4)
})

t.test('the key: the client name when a token named one, else the address', async (t) => {
  t.equal(rateLimitKey({ authorized: true, name: 'web', owner: 'web', all: false, label: 'web' }, '10.0.0.1'), 'client:web')
  t.equal(rateLimitKey({ authorized: false, name: undefined, owner: 'anonymous', all: false, label: 'anonymous' }, '10.0.0.1'), 'ip:10.0.0.1')
})
