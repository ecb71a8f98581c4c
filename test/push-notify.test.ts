import t from 'tap'
import { sample, UPSTREAM_KEY } from './helpers/gateway.js'
import { openSse } from './helpers/sse-client.js'
import { pushGateway } from './helpers/task-world.js'
import { post, rawAnswer, waitFor } from './helpers/net.js'
import { notifySecret } from '../src/push/notify-hook.js'
import { SOON_MIN_GAP_MS } from '../src/push/refresher.js'

const TOKEN = 'client-TOKEN-notify-5a1d'
const PUBLIC_URL = 'https://gw.example/base'
// the refresher would take a minute: whatever arrives sooner came by callback
const SLOW = { REFRESH_INTERVAL_MS: '60000', CLIENT_KEYS: `web:${TOKEN}`, PUBLIC_URL }
const auth = { authorization: `Bearer ${TOKEN}` }

t.test('docs/push.md §5: with PUBLIC_URL every submit carries the gateway callback URL as notifyHook', async (t) => {
  const { gw, upstream: gwUp } = await pushGateway(t, SLOW)
  gwUp.setHandler(() => ({ kind: 'json', body: { code: 1, result: '123' } }))
  await post(`${gw.url}/mj/submit/imagine`, { prompt: 'a', notifyHook: 'https://attacker.example/x', NOTIFYHOOK: 'https://x' }, auth)
  const sent = JSON.parse(gwUp.requests[0]?.body.toString() ?? '') as Record<string, unknown>
  const hook = sent['notifyHook'] as string
  t.match(hook, /^https:\/\/gw\.example\/base\/gateway\/notify\/[A-Za-z0-9_-]{32}$/)
  t.equal(Object.keys(sent).filter((k) => k.toLowerCase() === 'notifyhook').length, 1, "the client's hooks are gone")
  t.notOk(hook.includes(UPSTREAM_KEY))
  t.equal(hook.split('/').pop(), notifySecret(UPSTREAM_KEY))

  const { gw: allowed, upstream: allowedUp } = await pushGateway(t, { ...SLOW, ALLOW_NOTIFY_HOOK: 'true' })
  allowedUp.setHandler(() => ({ kind: 'json', body: { code: 1, result: '1' } }))
  await post(`${allowed.url}/mj/submit/imagine`, { prompt: 'a', notifyHook: 'https://client.example/hook' }, auth)
  await post(`${allowed.url}/mj/submit/imagine`, { prompt: 'b' }, auth)
  const [own, none] = allowedUp.requests.map((r) => JSON.parse(r.body.toString()) as Record<string, unknown>)
  t.equal(own?.['notifyHook'], 'https://client.example/hook', 'ALLOW_NOTIFY_HOOK=true: a client hook is kept')
  t.match(none?.['notifyHook'], /\/gateway\/notify\//, '…and a submit without one gets the gateway hook')

  const { gw: plain, upstream: plainUp } = await pushGateway(t, { CLIENT_KEYS: `web:${TOKEN}` })
  plainUp.setHandler(() => ({ kind: 'json', body: { code: 1, result: '1' } }))
  await post(`${plain.url}/mj/submit/imagine`, { prompt: 'a', notifyHook: 'https://attacker.example/x' }, auth)
  t.notOk('notifyHook' in (JSON.parse(plainUp.requests[0]?.body.toString() ?? '') as object), 'without PUBLIC_URL the hook is removed')
  const route = await post(`${plain.url}/gateway/notify/${notifySecret(UPSTREAM_KEY)}`, {})
  t.equal(route.status, 404, 'and there is no callback route')
})

t.test('docs/push.md §5: a callback for a watched task is an update at once; anything else is 404 and changes nothing', async (t) => {
  // access lines on: the callback's secret must not be in them
  const { gw, world } = await pushGateway(t, { ...SLOW, LOG_LEVEL: 'info' })
  const secret = notifySecret(UPSTREAM_KEY)
  const hook = `${gw.url}/gateway/notify/${secret}`
  world.set('n1', 'IN_PROGRESS', { progress: '10%' })
  const s = await openSse(`${gw.url}/mj/task/n1/events`, auth)
  await s.waitForEvents(1)

  const lists = world.listCalls
  const update = JSON.stringify({ ...JSON.parse(world.set('n1', 'IN_PROGRESS', { progress: '80%' })) })
  const accepted = await post(hook, update, { 'content-type': 'application/json' })
  t.equal(accepted.status, 200)
  await s.waitForEvents(2, 3000)
  t.equal(s.events[1]?.data, update, 'the event is the upstream’s state')
  const fetched = await gw.fetchTask('n1', auth)
  t.equal(fetched.body, update, '/fetch answers it too')
  t.equal(world.listCalls, lists + 1, 'read from the upstream at once: one list call (no round is due for a minute)')

  // a forged state (the callback URL may have leaked): the task is read from the upstream, the forgery goes nowhere
  const forgedState = JSON.stringify({ id: 'n1', status: 'SUCCESS', progress: '100%', imageUrl: 'https://cdn.discordapp.com/attachments/evil.png' })
  t.equal((await post(hook, forgedState, { 'content-type': 'application/json' })).status, 200, 'a watched task: taken as a hint')
  await waitFor(() => world.listCalls === lists + 2)
  await new Promise((r) => setTimeout(r, 100))
  t.equal(s.events.length, 2, 'no event: the upstream says nothing changed')
  t.equal((await gw.fetchTask('n1', auth)).body, update, '/fetch still answers the upstream’s state')

  // forged / replayed / unwatched: 404, nothing changes
  const forged = await post(`${gw.url}/gateway/notify/${'A'.repeat(32)}`, update, { 'content-type': 'application/json' })
  t.equal(forged.status, 404)
  t.match(forged.json(), { statusCode: 404, code: 'MJGW_NOT_FOUND' })
  const unwatched = await post(hook, JSON.stringify({ id: 'other', status: 'SUCCESS' }), { 'content-type': 'application/json' })
  t.equal(unwatched.status, 404)
  t.equal((await post(hook, 'not json', { 'content-type': 'text/plain' })).status, 404)
  t.equal((await post(hook, '', { 'content-type': 'application/json' })).status, 404)
  const done = world.set('n1', 'SUCCESS')
  t.equal((await post(hook, done, { 'content-type': 'application/json' })).status, 200)
  await s.waitForEnd()
  const replay = await post(hook, update, { 'content-type': 'application/json' })
  t.equal(replay.status, 404, 'a replayed callback after the end: the task is not watched any more')
  t.equal((await gw.fetchTask('n1', auth)).body, done, 'the terminal state stays')

  const m = await gw.metrics()
  t.equal(sample(m, 'mj_gateway_notify_callbacks_total', { outcome: 'accepted' }), 3)
  t.equal(sample(m, 'mj_gateway_notify_callbacks_total', { outcome: 'rejected' }), 1)
  t.equal(sample(m, 'mj_gateway_notify_callbacks_total', { outcome: 'ignored' }), 4)
  // the router takes the route however its path is escaped or written (absolute form): the log hides it each time
  const escaped = await post(`${gw.url}/gateway/%6Eotify/${secret}`, update, { 'content-type': 'application/json' })
  t.equal(escaped.status, 404, 'an escaped path reaches the route (the task has ended: ignored)')
  const absolute = await rawAnswer(
    Number(new URL(gw.url).port),
    `POST http://gw.example/gateway/notify/${secret} HTTP/1.1\r\nHost: gw.example\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(update)}\r\nConnection: close\r\n\r\n${update}`
  )
  t.equal(absolute.status, 404, 'so does the absolute form')
  t.equal(sample(await gw.metrics(), 'mj_gateway_notify_callbacks_total', { outcome: 'ignored' }), 6, 'both were taken as callbacks')
  await waitFor(() => gw.logs().includes('"url":"/gateway/notify/[redacted]"'))
  t.notOk(gw.logs().includes(secret), 'the callback secret is in no log line')
})

t.test('docs/push.md §5: callbacks cost at most one upstream call per 250 ms, and none while the upstream is failing', async (t) => {
  const { gw, world } = await pushGateway(t, SLOW)
  const hook = `${gw.url}/gateway/notify/${notifySecret(UPSTREAM_KEY)}`
  const body = world.set('c1', 'IN_PROGRESS', { progress: '10%' })
  const s = await openSse(`${gw.url}/mj/task/c1/events`, auth)
  await s.waitForEvents(1)
  const lists = world.listCalls

  // a stream of callbacks (forged or not), one every 30 ms for 300 ms: one call per 250 ms, each for all that came
  const first = Date.now()
  for (let i = 0; i < 10; i++) {
    t.equal((await post(hook, body, { 'content-type': 'application/json' })).status, 200)
    await new Promise((r) => setTimeout(r, 30))
  }
  // a slow machine stretches the stream: the bound follows the time it really took (300 ms quiet: at most 3)
  const spanMs = Date.now() - first
  await new Promise((r) => setTimeout(r, 400))
  const calls = world.listCalls - lists
  const bound = 2 + Math.floor(spanMs / SOON_MIN_GAP_MS)
  t.ok(calls >= 1 && calls <= Math.min(bound, 9), `${calls} list calls for 10 callbacks over ${spanMs} ms (at most ${bound})`)

  // the upstream fails: a call backs off; callbacks meanwhile ask nothing
  world.failLists(1000)
  await new Promise((r) => setTimeout(r, 300))
  const beforeFailure = world.listCalls
  const errors = sample(await gw.metrics(), 'mj_gateway_refresh_calls_total', { outcome: 'error' }) ?? 0
  await post(hook, body, { 'content-type': 'application/json' })
  await waitFor(() => world.listCalls > beforeFailure)
  // its retries spent, the call failed (counted once, after the last retry)
  await waitFor(async () => (sample(await gw.metrics(), 'mj_gateway_refresh_calls_total', { outcome: 'error' }) ?? 0) > errors)
  const failed = world.listCalls
  await post(hook, body, { 'content-type': 'application/json' })
  await new Promise((r) => setTimeout(r, 600))
  t.equal(world.listCalls, failed, 'backing off: the callback waits for the round after the backoff')
  s.close()
})
