import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startGateway, sample } from './helpers/gateway.js'
import { gatewayWithFake } from './helpers/tenancy.js'
import { post, waitFor, type HttpResult } from './helpers/net.js'
import { idFromUrl, taskBody } from '../src/demo/simulated-upstream.js'
import { FairShare } from '../src/upstream/fair-share.js'

// 20 maximum-size submits through one process take a while on a busy machine
t.setTimeout(300_000)

const A = { authorization: 'Bearer fair-token-a' }
const B = { authorization: 'Bearer fair-token-b' }
const ENV = { CLIENT_KEYS: 'a:fair-token-a,b:fair-token-b', TASK_OWNERSHIP: 'off', RATE_LIMIT_PER_MINUTE: '0', POLL_CACHE_MS: '0' }
const SUBMITTED = { code: 1, description: 'Submit success', result: '1730621826053001' }

/** ids starting with `hang` never get an answer; every other id is a finished task */
const hangOrAnswer = (req: { url: string }) => {
  const id = idFromUrl(req.url) ?? ''
  return id.startsWith('hang') ? ({ kind: 'hang' } as const) : ({ kind: 'json', body: taskBody(id, 'SUCCESS') } as const)
}

t.test('docs/tenancy.md CLIENT_MAX_INFLIGHT: beyond it a client gets 429 with retry-after (hits too); other clients are untouched', async (t) => {
  const { gw, up } = await gatewayWithFake(t, { ...ENV, CLIENT_MAX_INFLIGHT: '2', UPSTREAM_TIMEOUT_MS: '1500', STALE_IF_ERROR_SECONDS: '0' })
  up.setHandler(hangOrAnswer)
  t.equal((await gw.fetchTask('done1', A)).status, 200)
  const hanging = [gw.fetchTask('hang1', A), gw.fetchTask('hang2', A)]
  await waitFor(() => up.calls === 3)
  const over = await gw.fetchTask('other', A)
  t.equal(over.status, 429)
  t.match(over.json(), { statusCode: 429, code: 'MJGW_RATE_LIMITED', error: 'Too Many Requests' })
  t.equal(over.headers['retry-after'], '1')
  t.equal((await gw.fetchTask('done1', A)).status, 429, 'a cache hit too: the lane leaves it to the route')
  const other = await gw.fetchTask('done1', B)
  t.equal(other.status, 200, 'another client is served')
  t.equal(other.headers['x-cache'], 'HIT')
  t.equal(up.calls, 3, 'nothing more reached upstream')
  t.same((await Promise.all(hanging)).map((r) => r.status), [504, 504])
  t.equal((await gw.fetchTask('done1', A)).status, 200, 'once they are done, the client is served again')
  t.equal(sample(await gw.metrics(), 'mj_gateway_client_requests_total', { client: 'a', route: '/mj/task/:id/fetch', status_code: '429' }), 2)
})

/** a POST whose headers go out at once and whose body is sent only by `write` */
function openPost(port: number, headers: Record<string, string>, path = '/mj/submit/blend'): { write(b: Buffer): void; response: Promise<{ status: number; headers: Record<string, unknown>; body: string }>; destroy(): void } {
  const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, agent: false })
  const response = new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
  })
  req.flushHeaders()
  return { write: (b) => req.write(b), response, destroy: () => req.destroy() }
}

t.test('docs/tenancy.md SUBMIT_INFLIGHT_MAX_BYTES: 503 with retry-after, before the body is read when its length is known', async (t) => {
  const { gw, up } = await gatewayWithFake(t, { ...ENV, SUBMIT_INFLIGHT_MAX_BYTES: '1000', UPSTREAM_TIMEOUT_MS: '1000' })
  up.setHandler(() => ({ kind: 'json', body: SUBMITTED }))

  const unread = openPost(gw.port, { ...A, 'content-length': '5000' })
  const early = await unread.response
  unread.destroy()
  t.equal(early.status, 503, 'answered with not one body byte sent')
  t.match(JSON.parse(early.body), { statusCode: 503, code: 'MJGW_OVERLOADED', error: 'Service Unavailable' })
  t.equal(early.headers['retry-after'], '1')

  const chunked = openPost(gw.port, { ...A, 'transfer-encoding': 'chunked' })
  const part = Buffer.from(`{"prompt":"${'a'.repeat(588)}`)
  chunked.write(part)
  await sleep(50)
  chunked.write(Buffer.from(`${'b'.repeat(600)}"}`))
  const cut = await chunked.response
  chunked.destroy()
  t.equal(cut.status, 503, 'a body without a length is cut off once it stops fitting')
  t.equal(up.calls, 0)

  up.setHandler(() => ({ kind: 'hang' }))
  const body = JSON.stringify({ prompt: 'x'.repeat(580) })
  const first = post(`${gw.url}/mj/submit/imagine`, body, { ...A, 'content-type': 'application/json' })
  await waitFor(() => up.calls === 1)
  const second = await post(`${gw.url}/mj/submit/imagine`, body, { ...B, 'content-type': 'application/json' })
  t.equal(second.status, 503, 'the bytes held by another client’s submit count')
  t.equal((await first).status, 504)
  up.setHandler(() => ({ kind: 'json', body: SUBMITTED }))
  t.equal((await post(`${gw.url}/mj/submit/imagine`, body, { ...B, 'content-type': 'application/json' })).status, 200, 'given back when it is done')
})

t.test('docs/tenancy.md SUBMIT_INFLIGHT_MAX_BYTES holds for every submit-like route: under a mode prefix and outside /mj/submit', async (t) => {
  const { gw, up } = await gatewayWithFake(t, { ...ENV, SUBMIT_INFLIGHT_MAX_BYTES: '1000' })
  up.setHandler(() => ({ kind: 'json', body: SUBMITTED }))
  for (const path of ['/mj-fast/mj/submit/imagine', '/mj/insight-face/swap', '/mj-relax/mj/insight-face/swap']) {
    const unread = openPost(gw.port, { ...A, 'content-length': '5000' }, path)
    const early = await unread.response
    unread.destroy()
    t.equal(early.status, 503, `${path}: refused before its body is read`)
  }
  t.equal(up.calls, 0)
})

t.test('docs/tenancy.md fairness: one client’s hanging misses hold at most half the upstream connections; another client’s miss goes through', async (t) => {
  const { gw, up } = await gatewayWithFake(t, { ...ENV, CLIENT_MAX_INFLIGHT: '500', UPSTREAM_TIMEOUT_MS: '20000', STALE_IF_ERROR_SECONDS: '0' })
  up.setHandler(hangOrAnswer)
  let settled = 0
  const hanging = Array.from({ length: 70 }, (_, i) => gw.fetchTask(`hang${i}`, A).finally(() => settled++))
  await waitFor(() => up.calls >= 32)
  await sleep(200)
  t.equal(up.calls, 32, 'a holds 32 of the 64 connections, the rest of its calls wait')
  const b = await gw.fetchTask('fine1', B)
  t.equal(b.status, 200, 'b’s miss is answered')
  t.equal(b.headers['x-cache'], 'MISS')
  t.equal(settled, 0, 'while every one of a’s calls is still waiting')
  // the hanging upstream goes away: a's calls end (502), waiting ones included, none of them a success
  await up.close()
  const statuses = new Set((await Promise.all(hanging)).map((r) => r.status))
  t.notOk(statuses.has(200), `a’s calls end without an answer: ${[...statuses].join(', ')}`)
})

t.test('docs/tenancy.md fairness: a call waiting for its share of connections gives up with the time budget (504)', async (t) => {
  const { gw, up } = await gatewayWithFake(t, { ...ENV, CLIENT_MAX_INFLIGHT: '500', UPSTREAM_TIMEOUT_MS: '1500', STALE_IF_ERROR_SECONDS: '0', UPSTREAM_RETRIES: '0' })
  up.setHandler(hangOrAnswer)
  const answers = await Promise.all(Array.from({ length: 34 }, (_, i) => gw.fetchTask(`hang-w${i}`, A)))
  t.same([...new Set(answers.map((r) => r.status))], [504])
  t.ok(up.calls <= 34, `${up.calls} upstream calls: the two beyond the share went only once a slot was free`)
})

t.test('FairShare: a client holds at most half; a freed slot goes to the first waiter allowed to take it; waiting can be given up', async (t) => {
  const share = new FairShare(4)
  const a1 = share.tryAcquire('a') as () => void
  const a2 = share.tryAcquire('a') as () => void
  t.equal(typeof a1 + typeof a2, 'functionfunction')
  t.equal(share.tryAcquire('a'), undefined, 'a third for a: wait')
  const waitA = share.wait('a', new AbortController().signal)
  const b1 = share.tryAcquire('b') as () => void
  t.ok(b1, 'b takes a free slot although a waits (a is at its share)')
  const anon = share.tryAcquire(undefined) as () => void
  t.ok(anon, 'a call without a client: bounded by the total only')
  t.equal(share.tryAcquire('b'), undefined, 'all four in use')
  const waitB = share.wait('b', new AbortController().signal)
  const give = new AbortController()
  const givenUp = share.wait(undefined, give.signal)
  give.abort(new Error('gone'))
  await t.rejects(givenUp, { message: 'gone' })
  a1()
  a1()
  t.equal(share.holding('a'), 2, 'released once, counted once; a’s waiter (first in line) took the slot')
  const a3 = await waitA
  anon()
  t.equal(share.holding('b'), 2, 'then b’s waiter')
  ;(await waitB)()
  b1()
  a3()
  a2()
  t.equal(share.holding('a') + share.holding('b'), 0)
})

t.test('docs/tenancy.md fairness: 20 concurrent maximum-size submits while another client polls cache hits (memory stays under 1 GiB)', async (t) => {
  // an upstream that reads and forgets each body (the fake upstream would keep them all)
  const server = createServer((req, res) => {
    if (req.method === 'POST') {
      req.resume()
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(SUBMITTED)))
    } else {
      const id = idFromUrl(req.url ?? '') ?? ''
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(taskBody(id, 'SUCCESS')))
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  // load shedding off: this one process is client, gateway and upstream at once, and its own lag is not the point here
  const gw = await startGateway(t, { ...ENV, EVENT_LOOP_MAX_DELAY_MS: '0' }, { upstreamUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
  t.equal((await gw.fetchTask('polled', B)).status, 200)

  const max = gw.config.submitMaxBodyBytes
  const head = '{"prompt":"x","base64Array":["'
  const body = Buffer.alloc(max, 'A')
  body.write(head, 0)
  body.write('"]}', max - 3)
  let peakRss = process.memoryUsage().rss
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10)
  let polling = true
  let worstPollMs = 0
  let polls = 0
  const poller = (async () => {
    while (polling) {
      const started = performance.now()
      const r = await gw.fetchTask('polled', B)
      worstPollMs = Math.max(worstPollMs, performance.now() - started)
      polls++
      if (r.status !== 200) throw new Error(`poll answered ${r.status}`)
    }
  })()
  const began = performance.now()
  const submits: HttpResult[] = await Promise.all(
    Array.from({ length: 20 }, () => post(`${gw.url}/mj/submit/blend`, body, { ...A, 'content-type': 'application/json' }))
  )
  const submitMs = performance.now() - began
  polling = false
  await poller
  clearInterval(sampler)
  const statuses = submits.map((r) => r.status)
  t.ok(statuses.every((s) => s === 200 || s === 503), `each submit forwarded or refused 503: ${statuses.join(' ')}`)
  t.ok(statuses.includes(200), 'some are forwarded')
  t.ok(polls > 0, `${polls} polls during the submits`)
  // generous (the machine may be busy): no hit waits for the submits as a whole
  t.ok(worstPollMs < Math.min(5000, submitMs / 3), `the slowest hit took ${Math.round(worstPollMs)} ms of the submits' ${Math.round(submitMs)} ms`)
  t.ok(peakRss < 1024 ** 3, `peak RSS ${Math.round(peakRss / 1024 ** 2)} MiB (gateway, clients and upstream in one process)`)
})
