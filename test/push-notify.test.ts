import t from 'tap'
import { sample, UPSTREAM_KEY } from './helpers/gateway.js'
import { openSse } from './helpers/sse-client.js'
import { pushGateway } from './helpers/task-world.js'
import { post, waitFor } from './helpers/net.js'
import { notifySecret } from '../src/push/notify-hook.js'

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
  await waitFor(() => gw.logs().includes('"url":"/gateway/notify/[redacted]"'))
  t.notOk(gw.logs().includes(secret), 'the callback secret is in no log line')
})
