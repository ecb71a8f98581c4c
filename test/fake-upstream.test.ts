import t from 'tap'
import { connect } from 'node:net'
import { request } from 'undici'
import {
  idFromUrl,
  imageUrlExpiringAt,
  startFakeUpstream,
  taskBody,
  type Behavior,
  type FakeUpstream,
  type Handler
} from './helpers/fake-upstream.js'
import { get, post, waitFor } from './helpers/net.js'

/** the part of a tap Test these helpers need */
interface Teardown {
  teardown(fn: () => unknown): void
}

async function upstream(tt: Teardown, handler?: Handler): Promise<FakeUpstream> {
  const up = await startFakeUpstream(handler ? { handler } : undefined)
  tt.teardown(() => up.close())
  return up
}

/** settles within ms? resolves 'pending' if not, else the outcome */
async function within<T>(p: Promise<T>, ms: number): Promise<{ done: 'ok'; value: T } | { done: 'error'; error: unknown } | { done: 'pending' }> {
  let timer: NodeJS.Timeout | undefined
  const pending = new Promise<{ done: 'pending' }>((resolve) => {
    timer = setTimeout(() => resolve({ done: 'pending' }), ms)
  })
  try {
    return await Promise.race([
      p.then(
        (value) => ({ done: 'ok' as const, value }),
        (error: unknown) => ({ done: 'error' as const, error })
      ),
      pending
    ])
  } finally {
    clearTimeout(timer)
  }
}

function errorCode(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as Error & { code?: unknown }).code
  const cause = (err as Error & { cause?: unknown }).cause
  const causeCode = cause instanceof Error ? (cause as Error & { code?: unknown }).code : undefined
  return [code, causeCode, err.message].filter((x) => x !== undefined).join(' ')
}

function exOf(url: string): number {
  const ex = new URL(url).searchParams.get('ex')
  if (ex === null || !/^[0-9a-f]+$/.test(ex)) throw new Error(`no hex ex= in ${url}`)
  return parseInt(ex, 16)
}

t.test('default handler: fetch answers a SUCCESS task for the id, anything else is a JSON 404', async (t) => {
  const up = await upstream(t)
  t.match(up.url, /^http:\/\/127\.0\.0\.1:\d+$/)

  const r = await get(`${up.url}/mj/task/1730621826053455/fetch`)
  t.equal(r.status, 200)
  t.match(r.headers['content-type'], /^application\/json/)
  t.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)))
  const body = r.json() as Record<string, unknown>
  t.equal(body.id, '1730621826053455')
  t.equal(body.status, 'SUCCESS')
  t.equal(body.progress, '100%')
  t.equal((body.buttons as unknown[]).length, 9)
  const ex = exOf(body.imageUrl as string)
  const want = Math.floor(Date.now() / 1000) + 86_400
  t.ok(Math.abs(ex - want) <= 2, `ex= is 24 h from now (${ex} vs ${want})`)

  for (const [method, path] of [
    ['GET', '/mj/task/list'],
    ['GET', '/mj/task/abc/image-seed'],
    ['POST', '/mj/task/abc/fetch'],
    ['GET', '/nope']
  ] as const) {
    const res = await request(`${up.url}${path}`, { method })
    const text = await res.body.text()
    t.equal(res.statusCode, 404, `${method} ${path} is 404`)
    t.match(JSON.parse(text), { code: 404, error: 'Not Found' })
  }
  t.equal(up.calls, 5)
})

t.test('records method, url, headers and body of every request, in order', async (t) => {
  const up = await upstream(t)
  await get(`${up.url}/mj/task/a1/fetch?x=1`, { authorization: 'Bearer up-key', 'x-trace': 'abc' })
  await post(`${up.url}/mj/submit/imagine`, { prompt: 'pig' }, { 'mj-api-secret': 's3cret' })
  await request(`${up.url}/mj/submit/blend`, { method: 'PUT', body: Buffer.from([0, 1, 2, 255]) }).then((r) => r.body.dump())

  t.equal(up.calls, 3)
  t.equal(up.requests.length, 3)
  const [a, b, c] = up.requests
  t.equal(a?.method, 'GET')
  t.equal(a?.url, '/mj/task/a1/fetch?x=1')
  t.equal(a?.headers.authorization, 'Bearer up-key')
  t.equal(a?.headers['x-trace'], 'abc')
  t.equal(a?.body.length, 0)
  t.equal(b?.method, 'POST')
  t.equal(b?.url, '/mj/submit/imagine')
  t.equal(b?.headers['mj-api-secret'], 's3cret')
  t.equal(b?.headers.authorization, undefined, 'no header that was not sent')
  t.equal(b?.headers['content-type'], 'application/json')
  t.same(JSON.parse(b?.body.toString('utf8') ?? ''), { prompt: 'pig' })
  t.equal(c?.method, 'PUT')
  t.same([...(c?.body ?? [])], [0, 1, 2, 255], 'binary body recorded byte for byte')

  t.equal(up.callsTo('/mj/task/'), 1)
  t.equal(up.callsTo('/mj/submit/'), 2)
  t.equal(up.callsTo('/mj/submit/imagine'), 1)
  t.equal(up.callsTo('/mj/task/a1/fetch'), 1, 'prefix matches a url with a query')
  t.equal(up.callsTo('/other'), 0)
  t.equal(up.callsTo('/fetch'), 0, 'a prefix, not a substring')
  t.equal(up.callsTo(''), 3)
})

t.test('counts requests on one keep-alive connection and concurrent ones', async (t) => {
  const up = await upstream(t)
  for (let i = 0; i < 5; i++) {
    const r = await get(`${up.url}/mj/task/k${i}/fetch`)
    t.equal((r.json() as { id: string }).id, `k${i}`)
  }
  await Promise.all(Array.from({ length: 20 }, (_, i) => get(`${up.url}/mj/task/c${i}/fetch`)))
  t.equal(up.calls, 25)
  t.equal(up.callsTo('/mj/task/c'), 20)
  t.same(
    up.requests.slice(0, 5).map((r) => r.url),
    [0, 1, 2, 3, 4].map((i) => `/mj/task/k${i}/fetch`)
  )
})

t.test('json: status, body, headers and delay', async (t) => {
  const up = await upstream(t)
  const body = { statusCode: 503, nested: { ok: false }, list: [1, 'two'] }
  up.enqueue({ kind: 'json', status: 503, body, headers: { 'Retry-After': '7', 'x-extra': 'y' }, delayMs: 300 })
  const started = Date.now()
  const r = await get(`${up.url}/mj/task/a/fetch`)
  const elapsed = Date.now() - started
  t.equal(r.status, 503)
  t.equal(r.body, JSON.stringify(body))
  t.equal(r.headers['retry-after'], '7')
  t.equal(r.headers['x-extra'], 'y')
  t.match(r.headers['content-type'], /^application\/json/)
  t.ok(elapsed >= 290, `delayed by delayMs (${elapsed} ms)`)
  t.ok(elapsed < 2000, `but not much more (${elapsed} ms)`)

  up.enqueue({ kind: 'json', body: null }, { kind: 'json', body: undefined }, { kind: 'json', body: 'text' })
  const n = await get(`${up.url}/mj/task/a/fetch`)
  t.equal(n.status, 200, 'status defaults to 200')
  t.equal(n.body, 'null')
  const e = await get(`${up.url}/mj/task/a/fetch`)
  t.equal(e.body, '', 'an undefined body sends an empty body')
  t.equal(e.headers['content-length'], '0')
  const s = await get(`${up.url}/mj/task/a/fetch`)
  t.equal(s.body, '"text"')

  up.enqueue({ kind: 'json', body: {}, headers: { 'content-type': 'text/html' } })
  t.equal((await get(`${up.url}/x`)).headers['content-type'], 'text/html', 'headers override the default content-type')
})

t.test('raw: exact bytes, including invalid UTF-8 and lying content-type', async (t) => {
  const up = await upstream(t)
  const bytes = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x00, 0x0a])
  up.enqueue({ kind: 'raw', status: 200, body: bytes, headers: { 'x-kind': 'raw' } })
  up.enqueue({ kind: 'raw', status: 502, body: '<html>bad gateway</html>', headers: { 'content-type': 'text/html' }, delayMs: 50 })
  up.enqueue({ kind: 'raw', body: '' })

  const r1 = await request(`${up.url}/mj/task/a/fetch`)
  const got = Buffer.from(await r1.body.arrayBuffer())
  t.equal(r1.statusCode, 200)
  t.ok(got.equals(bytes), 'byte-for-byte')
  t.equal(r1.headers['content-length'], '6')
  t.equal(r1.headers['x-kind'], 'raw')
  t.match(String(r1.headers['content-type']), /^application\/json/, 'defaults to application/json')

  const r2 = await get(`${up.url}/mj/task/a/fetch`)
  t.equal(r2.status, 502)
  t.equal(r2.body, '<html>bad gateway</html>')
  t.equal(r2.headers['content-type'], 'text/html')

  const r3 = await get(`${up.url}/mj/task/a/fetch`)
  t.equal(r3.status, 200)
  t.equal(r3.body, '')
})

t.test('hang: the request is read and never answered until close() ends it', async (t) => {
  const up = await startFakeUpstream()
  up.setHandler(() => ({ kind: 'hang' }))
  const pending = request(`${up.url}/mj/task/h/fetch`, { method: 'POST', body: 'payload' })
  await waitFor(() => up.calls === 1)
  t.equal(up.requests[0]?.body.toString(), 'payload', 'the request body was read')
  const early = await within(pending, 300)
  t.equal(early.done, 'pending', 'no answer while open')

  const closeStarted = Date.now()
  await up.close()
  t.ok(Date.now() - closeStarted < 1000, 'close() does not wait for the hanging request')
  const late = await within(pending, 2000)
  t.equal(late.done, 'error', 'the client sees the connection end')
  t.equal(up.calls, 1)
})

t.test('reset: the client gets a socket error and no response', async (t) => {
  const up = await upstream(t)
  up.enqueue({ kind: 'reset' })
  const started = Date.now()
  const outcome = await within(request(`${up.url}/mj/task/r/fetch`), 3000)
  t.equal(outcome.done, 'error', 'request rejects')
  if (outcome.done === 'error') {
    t.match(errorCode(outcome.error), /ECONNRESET|UND_ERR_SOCKET|other side closed/, errorCode(outcome.error))
  }
  t.ok(Date.now() - started < 2000, 'promptly')
  t.equal(up.calls, 1)
  // the server is still fine afterwards
  const ok = await get(`${up.url}/mj/task/r/fetch`)
  t.equal(ok.status, 200)
  t.equal(up.calls, 2)
})

t.test('reset-mid-body: headers and part of the body arrive, then the body errors', async (t) => {
  const up = await upstream(t)
  up.enqueue({ kind: 'reset-mid-body', status: 200, partial: '{"id":"m","status":"SUC' })
  const res = await request(`${up.url}/mj/task/m/fetch`)
  t.equal(res.statusCode, 200, 'status arrives')
  t.match(String(res.headers['content-type']), /^application\/json/)
  const declared = Number(res.headers['content-length'])
  t.ok(declared > Buffer.byteLength('{"id":"m","status":"SUC'), `content-length ${declared} promises more than is sent`)
  const received: Buffer[] = []
  const bodyOutcome = await within(
    (async () => {
      for await (const chunk of res.body) received.push(chunk as Buffer)
    })(),
    3000
  )
  t.equal(bodyOutcome.done, 'error', 'reading the body fails')
  t.equal(Buffer.concat(received).toString(), '{"id":"m","status":"SUC', 'the partial body was delivered first')

  // default partial names the requested id; default status 200
  up.enqueue({ kind: 'reset-mid-body' })
  const res2 = await request(`${up.url}/mj/task/zz9/fetch`)
  t.equal(res2.statusCode, 200)
  const received2: Buffer[] = []
  const o2 = await within(
    (async () => {
      for await (const chunk of res2.body) received2.push(chunk as Buffer)
    })(),
    3000
  )
  t.equal(o2.done, 'error')
  t.match(Buffer.concat(received2).toString(), /^\{"id":"zz9",/)
})

t.test('huge with content-length: exactly `bytes` bytes of a parseable task object', async (t) => {
  const up = await upstream(t)
  const bytes = 5 * 1024 * 1024 + 17
  up.enqueue({ kind: 'huge', bytes })
  const res = await request(`${up.url}/mj/task/big1/fetch`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], String(bytes))
  t.equal(res.headers['transfer-encoding'], undefined)
  const chunks: Buffer[] = []
  for await (const c of res.body) chunks.push(c as Buffer)
  const buf = Buffer.concat(chunks)
  t.equal(buf.length, bytes, 'exact size')
  t.ok(chunks.length > 1, `streamed in ${chunks.length} chunks`)
  const parsed = JSON.parse(buf.toString('utf8')) as Record<string, unknown>
  t.equal(parsed.id, 'big1')
  t.equal(parsed.status, 'SUCCESS')
  t.equal(typeof parsed.padding, 'string')
})

t.test('huge chunked: no content-length, about `bytes` bytes, status honoured', async (t) => {
  const up = await upstream(t)
  const bytes = 3 * 1024 * 1024
  up.enqueue({ kind: 'huge', bytes, chunked: true, status: 201 })
  const res = await request(`${up.url}/mj/task/big2/fetch`)
  t.equal(res.statusCode, 201)
  t.equal(res.headers['content-length'], undefined)
  t.equal(res.headers['transfer-encoding'], 'chunked')
  const text = await res.body.text()
  t.equal(Buffer.byteLength(text), bytes)
  t.equal((JSON.parse(text) as { id: string }).id, 'big2')

  // a size below the bare task object still sends a valid (bare) object
  up.enqueue({ kind: 'huge', bytes: 10 })
  const small = await get(`${up.url}/mj/task/s/fetch`)
  t.equal((small.json() as { padding: string }).padding, '')
})

t.test('huge: a client that gives up mid-stream does not break the fake', async (t) => {
  const up = await upstream(t)
  up.enqueue({ kind: 'huge', bytes: 50 * 1024 * 1024 })
  const ac = new AbortController()
  const res = await request(`${up.url}/mj/task/big3/fetch`, { signal: ac.signal })
  let seen = 0
  const reading = (async () => {
    for await (const c of res.body) {
      seen += (c as Buffer).length
      if (seen > 256 * 1024) ac.abort()
    }
  })()
  const o = await within(reading, 5000)
  t.equal(o.done, 'error', 'aborted read')
  t.ok(seen < 50 * 1024 * 1024, `stopped early (${seen} bytes)`)
  const after = await get(`${up.url}/mj/task/next/fetch`)
  t.equal(after.status, 200, 'next request served')
  t.equal(up.calls, 2)
})

t.test('slow-body: the body is dripped with chunkDelayMs between pieces', async (t) => {
  const up = await upstream(t)
  const body = JSON.stringify({ id: 'slow', status: 'SUCCESS' })
  up.enqueue({ kind: 'slow-body', body: 'abcde', chunkDelayMs: 80 })
  const started = Date.now()
  const res = await request(`${up.url}/mj/task/slow/fetch`)
  const headersAt = Date.now() - started
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], '5')
  const pieces: string[] = []
  for await (const c of res.body) pieces.push((c as Buffer).toString())
  const total = Date.now() - started
  t.ok(total - headersAt >= 3 * 80, `headers came well before the body ended (${headersAt} of ${total} ms)`)
  t.equal(pieces.join(''), 'abcde')
  t.ok(pieces.length >= 3, `arrived in pieces (${pieces.length})`)
  t.ok(total >= 4 * 80 - 10, `took about 4 delays (${total} ms)`)

  up.enqueue({ kind: 'slow-body', body, chunkDelayMs: 20, chunkBytes: 10, status: 202 })
  const t2 = Date.now()
  const r2 = await get(`${up.url}/mj/task/slow/fetch`)
  const took = Date.now() - t2
  t.equal(r2.status, 202)
  t.equal(r2.body, body)
  const gaps = Math.ceil(Buffer.byteLength(body) / 10) - 1
  t.ok(took >= gaps * 20 - 10, `chunkBytes honoured (${took} ms for ${gaps} gaps)`)
})

t.test('enqueue is FIFO, then falls back to the handler; callIndex counts every call', async (t) => {
  const seen: number[] = []
  const up = await upstream(t, (req, i) => {
    seen.push(i)
    return { kind: 'json', body: { from: 'handler', i, url: req.url } }
  })
  up.enqueue({ kind: 'json', status: 500, body: { from: 'q1' } })
  up.enqueue({ kind: 'json', status: 503, body: { from: 'q2' } }, { kind: 'raw', status: 502, body: 'q3' })
  const out: [number, string][] = []
  for (let i = 0; i < 5; i++) {
    const r = await get(`${up.url}/mj/task/q/fetch`)
    out.push([r.status, r.body])
  }
  t.same(out, [
    [500, '{"from":"q1"}'],
    [503, '{"from":"q2"}'],
    [502, 'q3'],
    [200, JSON.stringify({ from: 'handler', i: 3, url: '/mj/task/q/fetch' })],
    [200, JSON.stringify({ from: 'handler', i: 4, url: '/mj/task/q/fetch' })]
  ])
  t.same(seen, [3, 4], 'handler not consulted while the queue has behaviors')
  t.equal(up.calls, 5)
})

t.test('setHandler replaces the handler; a throwing handler answers 500', async (t) => {
  const up = await upstream(t)
  up.setHandler((req) => {
    const id = idFromUrl(req.url)
    if (id === 'boom') throw new Error('handler exploded')
    return { kind: 'json', body: taskBody(id ?? '?', 'IN_PROGRESS') }
  })
  const r = await get(`${up.url}/mj/task/p1/fetch`)
  t.match(r.json(), { id: 'p1', status: 'IN_PROGRESS', progress: '42%', imageUrl: '' })
  const b = await get(`${up.url}/mj/task/boom/fetch`)
  t.equal(b.status, 500)
  t.match(b.json(), { message: 'handler exploded' })
  t.equal(up.calls, 2)
})

t.test('reset() clears counters, requests and queue, and restores the start handler', async (t) => {
  const start: Handler = () => ({ kind: 'json', body: { from: 'start' } })
  const up = await upstream(t, start)
  up.setHandler(() => ({ kind: 'json', status: 418, body: { from: 'later' } }))
  up.enqueue({ kind: 'json', status: 500, body: {} }, { kind: 'json', status: 500, body: {} })
  await get(`${up.url}/mj/task/a/fetch`)
  const before = up.requests
  t.equal(up.calls, 1)

  up.reset()
  t.equal(up.calls, 0)
  t.equal(up.requests.length, 0)
  t.equal(up.callsTo('/'), 0)
  t.equal(before.length, 1, 'a snapshot taken before reset() is left alone')
  const r = await get(`${up.url}/mj/task/a/fetch`)
  t.equal(r.status, 200, 'queued 500 was dropped')
  t.same(r.json(), { from: 'start' }, 'handler is the one given at start')
  t.equal(up.calls, 1)

  const plain = await upstream(t)
  plain.setHandler(() => ({ kind: 'json', status: 418, body: {} }))
  plain.reset()
  t.equal((await get(`${plain.url}/mj/task/d/fetch`)).status, 200, 'default handler restored')
})

t.test('close(): idempotent, fast with pending timers, slow bodies and open keep-alive sockets', async (t) => {
  const up = await startFakeUpstream()
  // an idle keep-alive connection from an earlier request
  t.equal((await get(`${up.url}/mj/task/a/fetch`)).status, 200)
  up.enqueue(
    { kind: 'json', body: {}, delayMs: 30_000 },
    { kind: 'slow-body', body: 'x'.repeat(1000), chunkDelayMs: 1000 }
  )
  const delayed = request(`${up.url}/mj/task/d/fetch`)
  const slow = request(`${up.url}/mj/task/s/fetch`).then((r) => r.body.text())
  await waitFor(() => up.calls === 3)
  // a raw socket that never sends a request
  const raw = connect(Number(new URL(up.url).port), '127.0.0.1')
  await new Promise<void>((resolve) => raw.once('connect', () => resolve()))
  const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()))
  raw.on('error', () => {})

  const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const timersWhileOpen = timeouts()
  const started = Date.now()
  await Promise.all([up.close(), up.close()])
  await up.close()
  t.ok(Date.now() - started < 1000, `closed promptly (${Date.now() - started} ms)`)
  t.equal((await within(delayed, 2000)).done, 'error', 'delayed response ended')
  t.equal((await within(slow, 2000)).done, 'error', 'slow body ended')
  t.equal((await within(rawClosed, 2000)).done, 'ok', 'idle raw socket closed')
  const refused = await within(get(`${up.url}/mj/task/a/fetch`), 2000)
  t.equal(refused.done, 'error', 'no longer listening')
  // the fake's 30 s and 1 s timers are gone (they would keep the process alive)
  t.ok(timeouts() <= timersWhileOpen - 2, `timers cleared (${timersWhileOpen} -> ${timeouts()})`)
})

t.test('taskBody: shapes per status, overrides', async (t) => {
  const keys = [
    'id', 'action', 'customId', 'botType', 'prompt', 'promptEn', 'description', 'state', 'submitTime',
    'startTime', 'finishTime', 'imageUrl', 'status', 'progress', 'failReason', 'buttons', 'maskBase64', 'properties'
  ]
  const s = taskBody('1', 'SUCCESS')
  t.same(Object.keys(s).sort(), [...keys].sort())
  t.match(s, { id: '1', action: 'IMAGINE', status: 'SUCCESS', progress: '100%', failReason: '', properties: { finalPrompt: String, finalZhPrompt: '' } })
  const btns = s.buttons as { customId: string; label: string }[]
  t.equal(btns.length, 9)
  t.same(btns.map((b) => b.label), ['U1', 'U2', 'U3', 'U4', '', 'V1', 'V2', 'V3', 'V4'])
  t.ok(btns.every((b) => b.customId.startsWith('MJ::JOB::')))
  t.ok(typeof s.finishTime === 'number' && s.finishTime > 0)

  const f = taskBody('2', 'FAILURE')
  t.equal(f.imageUrl, '')
  t.ok(typeof f.failReason === 'string' && f.failReason.length > 0, 'FAILURE has a failReason')
  t.same(f.buttons, [])
  t.same(Object.keys(f).sort(), [...keys].sort())

  for (const st of ['NOT_START', 'SUBMITTED', 'MODAL', 'IN_PROGRESS', '']) {
    const n = taskBody('3', st)
    t.equal(n.status, st)
    t.equal(n.imageUrl, '', `${st || '(empty)'} has no imageUrl`)
    t.match(n.progress, /^\d{1,2}%$/)
    t.not(n.progress, '100%')
    t.equal(n.finishTime, 0)
    t.equal(n.failReason, '')
  }
  const c = taskBody('4', 'CANCEL')
  t.equal(c.imageUrl, '')
  t.ok((c.finishTime as number) > 0)

  const o = taskBody('5', 'SUCCESS', { imageUrl: 'https://x/y.png', extra: 1 })
  t.equal(o.imageUrl, 'https://x/y.png')
  t.equal(o.extra, 1)
  t.equal(o.id, '5')

  t.same(
    { ...taskBody('6', 'IN_PROGRESS') },
    { ...taskBody('6', 'IN_PROGRESS') },
    'deterministic for a given id and status'
  )
  t.not(JSON.stringify(taskBody('a', 'SUCCESS').buttons), JSON.stringify(taskBody('b', 'SUCCESS').buttons))
})

t.test('imageUrlExpiringAt and idFromUrl', async (t) => {
  for (const sec of [0, 1_730_000_000, 1_730_621_855, 4_000_000_000]) {
    const u = imageUrlExpiringAt(sec)
    t.equal(exOf(u), sec, `ex= round-trips ${sec}`)
    t.match(u, /^https:\/\/cdn\.discordapp\.com\/attachments\/\d+\/\d+\/[^?]+\.png\?ex=[0-9a-f]{8,}&is=[0-9a-f]{8}&hm=[0-9a-f]{64}&$/)
  }
  t.equal(new URL(imageUrlExpiringAt(1_730_000_000)).searchParams.get('ex'), (1_730_000_000).toString(16))
  t.not(imageUrlExpiringAt(1), imageUrlExpiringAt(2))

  t.equal(idFromUrl('/mj/task/1730621826053455/fetch'), '1730621826053455')
  t.equal(idFromUrl('/mj/task/a-b_C/fetch?x=1'), 'a-b_C')
  t.equal(idFromUrl('http://127.0.0.1:9/mj/task/xyz/fetch'), 'xyz')
  t.equal(idFromUrl('/mj/task/a%20b/fetch'), 'a b')
  t.equal(idFromUrl('/mj/task/abc/image-seed'), undefined)
  t.equal(idFromUrl('/mj/task/list'), undefined)
  t.equal(idFromUrl('/mj/task//fetch'), undefined)
  t.equal(idFromUrl('/mj/task/a/b/fetch'), undefined)
  t.equal(idFromUrl('/x/mj/task/a/fetch'), undefined)
})

t.test('net helpers: get never throws on non-2xx; waitFor resolves and times out', async (t) => {
  const up = await upstream(t)
  const behaviors: Behavior[] = [
    { kind: 'json', status: 404, body: { no: 1 } },
    { kind: 'json', status: 500, body: { no: 2 } },
    { kind: 'raw', status: 200, body: 'not json' }
  ]
  up.enqueue(...behaviors)
  const r404 = await get(`${up.url}/a`, { 'x-h': '1' })
  t.equal(r404.status, 404)
  t.same(r404.json(), { no: 1 })
  t.equal(up.requests[0]?.headers['x-h'], '1', 'get sends the headers')
  const r500 = await get(`${up.url}/b`)
  t.equal(r500.status, 500)
  const rBad = await get(`${up.url}/c`)
  t.equal(rBad.body, 'not json')
  t.throws(() => rBad.json(), SyntaxError)

  let n = 0
  await waitFor(() => ++n >= 3, 1000)
  t.equal(n, 3)
  await waitFor(async () => Promise.resolve(true))
  const started = Date.now()
  await t.rejects(waitFor(() => false, 120), /waitFor/)
  const waited = Date.now() - started
  t.ok(waited >= 110 && waited < 1000, `rejected after about the timeout (${waited} ms)`)
  await t.rejects(waitFor(() => { throw new Error('cond broke') }, 1000), /cond broke/)

  const p = post(`${up.url}/mj/submit/imagine`, { a: 1 })
  const r = await p
  t.equal(r.status, 404)
  t.equal(up.requests[3]?.body.toString(), '{"a":1}')
})
