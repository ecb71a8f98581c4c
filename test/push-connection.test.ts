/**
 * docs/push.md §10: an events stream's connection. Over HTTP/1.1 the gateway takes it from node:http once the stream
 * opens and frames the chunks itself; where it cannot (HTTP/1.0, a request pipelined behind), node:http keeps it.
 * The wire is checked byte by byte here, with raw sockets.
 */
import t from 'tap'
import { sample } from './helpers/gateway.js'
import { openSse } from './helpers/sse-client.js'
import { pushGateway } from './helpers/task-world.js'
import { openRaw, waitFor } from './helpers/net.js'
import { MAX_IGNORED_INPUT_BYTES } from '../src/push/stream-output.js'

const request = (path: string, version = '1.1'): string => `GET ${path} HTTP/${version}\r\nhost: x\r\naccept: text/event-stream\r\n\r\n`

interface Answer {
  status: number
  headers: Record<string, string>
  body: string
}

/** the first answer of a raw exchange: head parsed, body as sent */
function answerOf(raw: string): Answer {
  const end = raw.indexOf('\r\n\r\n')
  const lines = raw.slice(0, end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim()
  return { status: Number(lines[0]?.split(' ')[1]), headers, body: raw.slice(end + 4) }
}

/** a chunked body's chunks; throws when the framing is wrong */
function chunksOf(body: string): { chunks: string[]; last: boolean; rest: string } {
  const chunks: string[] = []
  let at = 0
  for (;;) {
    const eol = body.indexOf('\r\n', at)
    if (eol < 0) return { chunks, last: false, rest: body.slice(at) }
    const size = Number.parseInt(body.slice(at, eol), 16)
    if (!Number.isInteger(size) || /[^0-9a-f]/.test(body.slice(at, eol))) throw new Error(`bad chunk size at ${at}: ${JSON.stringify(body.slice(at, at + 20))}`)
    if (size === 0) return { chunks, last: body.slice(eol, eol + 4) === '\r\n\r\n', rest: body.slice(eol + 4) }
    const chunk = Buffer.from(body.slice(eol + 2), 'latin1').subarray(0, size)
    if (body.slice(eol + 2 + chunk.length, eol + 4 + chunk.length) !== '\r\n') throw new Error(`chunk at ${at} is not followed by CRLF`)
    chunks.push(chunk.toString('utf8'))
    at = eol + 4 + chunk.length
  }
}

const eventNames = (text: string): string[] => [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1] as string)
const subscribers = async (gw: { metrics(): Promise<string> }): Promise<number | undefined> => sample(await gw.metrics(), 'mj_gateway_events_subscribers')

t.test('docs/push.md §10: over HTTP/1.1 the stream is chunked by the gateway on a connection that closes with it: the last chunk, then the close', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  // not ASCII: a chunk's size is its bytes, not its characters
  world.set('c1', 'IN_PROGRESS', { progress: '10%', prompt: '一只猫 ✓ ünïcödé' })
  const c = openRaw(gw.port, request('/mj/task/c1/events'))
  const head = answerOf(await c.until(/event: task/))
  t.equal(head.status, 200)
  t.equal(head.headers['content-type'], 'text/event-stream')
  t.equal(head.headers['transfer-encoding'], 'chunked')
  t.equal(head.headers['connection'], 'close', 'the connection ends with the stream')
  t.equal(head.headers['keep-alive'], undefined)
  t.equal(head.headers['x-content-type-options'], 'nosniff', 'the security headers, as on every answer')
  world.set('c1', 'SUCCESS', { progress: '100%', prompt: '一只猫 ✓ ünïcödé' })
  const all = answerOf(await c.closed)
  const { chunks, last, rest } = chunksOf(all.body)
  t.ok(last, 'the last chunk (size 0) ends the body')
  t.equal(rest, '', 'nothing after it: the gateway closed the connection')
  t.same(eventNames(chunks.join('')), ['task', 'task', 'end'])
  t.match(chunks[0], '一只猫 ✓ ünïcödé', 'the task JSON as sent')
  t.ok(chunks.every((c) => c.endsWith('\n\n')), 'every chunk is whole events')
  await waitFor(async () => (await subscribers(gw)) === 0)
})

t.test('docs/push.md §10: a client that ends its side ends its stream; bytes a client sends on a stream are ignored', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('h1', 'IN_PROGRESS', { progress: '10%' })
  const c = openRaw(gw.port, request('/mj/task/h1/events'))
  await c.until(/event: task/)
  c.socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nnot http at all\r\n\r\n')
  world.set('h1', 'IN_PROGRESS', { progress: '20%' })
  const second = await c.until(/20%/)
  t.notMatch(second, /"status":"ok"/, 'what a client sends after its request is not read as a request')
  t.equal(await subscribers(gw), 1)
  c.socket.end()
  const all = answerOf(await c.closed)
  t.ok(chunksOf(all.body).last, 'the stream ends cleanly with its last chunk')
  await waitFor(async () => (await subscribers(gw)) === 0)
  t.pass('its place is given back')
})

t.test('docs/push.md §10: a client that resets its connection: its stream ends, its place is given back, the gateway goes on', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('r1', 'IN_PROGRESS')
  const c = openRaw(gw.port, request('/mj/task/r1/events'))
  await c.until(/event: task/)
  c.socket.resetAndDestroy()
  await waitFor(async () => (await subscribers(gw)) === 0)
  const s = await openSse(`${gw.url}/mj/task/r1/events`)
  await s.waitForEvents(1)
  t.match(s.events[0], { event: 'task' }, 'the next subscriber is served')
  s.close()
})

t.test('docs/push.md §10: a client that keeps sending on its stream is dropped', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('s1', 'IN_PROGRESS')
  const c = openRaw(gw.port, request('/mj/task/s1/events'))
  await c.until(/event: task/)
  c.socket.write('x'.repeat(MAX_IGNORED_INPUT_BYTES + 1))
  await c.closed
  await waitFor(async () => (await subscribers(gw)) === 0)
  t.pass('closed, its place given back')
})

t.test('docs/push.md §7: a connection that takes nothing for the idle timeout is closed, even after its stream ended; a reading one stays', async (t) => {
  const { gw, world } = await pushGateway(
    t,
    { REFRESH_INTERVAL_MS: '100', UPSTREAM_MAX_BODY_BYTES: String(24 * 1048576) },
    { overrides: { timeouts: { idleMs: 1000 }, heartbeatMs: 200 } }
  )
  // a finished task whose one event is more than the kernel's socket buffers take: it ends at once, but its bytes
  // wait in the process for a client that does not read
  world.set('big', 'SUCCESS', { padding: 'x'.repeat(16 * 1048576) })
  // in the cache first, so the stream's first state takes no upstream call (its connection must not sit idle for
  // the timeout before its stream opens)
  t.equal((await gw.get('/mj/task/big/fetch')).status, 200)
  world.set('live', 'IN_PROGRESS')
  const reading = await openSse(`${gw.url}/mj/task/live/events`)
  await reading.waitForEvents(1)
  const c = openRaw(gw.port, request('/mj/task/big/events'))
  c.socket.pause()
  await waitFor(async () => (await subscribers(gw)) === 1 && (await gw.metric('mj_gateway_http_requests_total{method="GET",route="/mj/task/:id/events",status_code="200"}')) === 2, 20_000)
  t.pass('the ended stream has given its place back')
  // well past the idle timeout (1 s), the client reads again: what the kernel held reaches it, then the end of a
  // connection the gateway dropped, never the rest of the event nor the last chunk
  await new Promise((resolve) => setTimeout(resolve, 6000))
  c.socket.resume()
  const all = await c.closed
  t.ok(all.length < 14 * 1048576, `the connection was dropped with most of the event unsent (${all.length} bytes came)`)
  t.notMatch(all.slice(-200), /event: end/, 'no end event, no last chunk')
  t.notOk(reading.ended, 'a client that reads its heartbeats keeps its stream past the idle timeout')
  t.ok(reading.comments.length >= 3, 'it got heartbeats')
  reading.close()
})

t.test('docs/push.md §10: over HTTP/1.0 node:http keeps the stream: not chunked, the body ends with the connection', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('o1', 'IN_PROGRESS')
  const c = openRaw(gw.port, request('/mj/task/o1/events', '1.0'))
  const head = answerOf(await c.until(/event: task/))
  t.equal(head.status, 200)
  t.equal(head.headers['transfer-encoding'], undefined, 'HTTP/1.0 has no chunks')
  t.equal(head.headers['content-type'], 'text/event-stream')
  world.set('o1', 'SUCCESS')
  const all = answerOf(await c.closed)
  t.same(eventNames(all.body), ['task', 'task', 'end'])
  await waitFor(async () => (await subscribers(gw)) === 0)

  // and a client of such a stream that leaves gives its place back
  world.set('o2', 'IN_PROGRESS')
  const gone = openRaw(gw.port, request('/mj/task/o2/events', '1.0'))
  await gone.until(/event: task/)
  t.equal(await subscribers(gw), 1)
  gone.socket.destroy()
  await waitFor(async () => (await subscribers(gw)) === 0)
  t.pass('a client that closes its connection gives its place back')
})

t.test('docs/push.md §7: an HTTP/1.0 client that stops reading is dropped too', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  const padding = 'x'.repeat(256 * 1024)
  world.set('big', 'IN_PROGRESS', { progress: '0%', padding })
  const c = openRaw(gw.port, request('/mj/task/big/events', '1.0'))
  c.socket.pause()
  t.teardown(() => c.socket.destroy())
  await waitFor(async () => (await subscribers(gw)) === 1)
  let n = 0
  const timer = setInterval(() => world.set('big', 'IN_PROGRESS', { progress: `${++n}%`, padding }), 50)
  t.teardown(() => clearInterval(timer))
  await waitFor(async () => (await subscribers(gw)) === 0, 30_000)
  t.pass(`dropped after ${n} changes it did not read`)
})

t.test('docs/push.md §10: a request pipelined behind an events request: node:http keeps the stream and answers the next request after it', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100' })
  world.set('p1', 'IN_PROGRESS')
  const c = openRaw(gw.port, `${request('/mj/task/p1/events')}GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n`)
  t.teardown(() => c.socket.destroy())
  const head = answerOf(await c.until(/event: task/))
  t.equal(head.headers['transfer-encoding'], 'chunked', 'node:http frames it')
  t.not(head.headers['connection'], 'close', 'and keeps the connection for the next answer')
  world.set('p1', 'SUCCESS')
  const all = await c.until(/"status":"ok"/)
  t.ok(all.indexOf('event: end') < all.indexOf('"status":"ok"'), 'the next answer comes once the stream has ended')
})

t.test('docs/push.md §9: an events stream’s access line and request sample are written when it opens, once', async (t) => {
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100', LOG_LEVEL: 'info' })
  world.set('l1', 'IN_PROGRESS')
  const series = 'mj_gateway_http_requests_total{method="GET",route="/mj/task/:id/events",status_code="200"}'
  const before = (await gw.metric(series)) ?? 0
  const s = await openSse(`${gw.url}/mj/task/l1/events`)
  await s.waitForEvents(1)
  const lines = (): string[] => gw.logLines().filter((l) => l.includes('"url":"/mj/task/l1/events"'))
  await waitFor(() => lines().length === 1)
  t.match(JSON.parse(lines()[0] as string), { res: { statusCode: 200 }, msg: 'request completed' }, 'while the stream is open')
  t.equal(await gw.metric(series), before + 1)
  world.set('l1', 'SUCCESS')
  await s.waitForEnd()
  await waitFor(async () => (await subscribers(gw)) === 0)
  t.equal(lines().length, 1, 'its end writes no second line')
  t.equal(await gw.metric(series), before + 1, 'nor a second sample')
})
