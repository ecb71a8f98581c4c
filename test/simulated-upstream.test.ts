import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { request } from 'undici'
import {
  idFromUrl,
  imageUrlExpiringAt,
  startSimulatedUpstream,
  taskBody,
  type Behavior,
  type Handler,
  type SimulatedUpstream,
  type SimulatedUpstreamOptions
} from '../src/demo/simulated-upstream.js'
import { get, post as postJson, send, waitFor } from './helpers/net.js'

const KEY = 'sim-test-key'
const BEARER = { authorization: `Bearer ${KEY}` }

interface Answer {
  status: number
  contentType: string | null
  text: string
  json: unknown
}

type Task = Record<string, unknown> & { id: string; status: string; progress: string; buttons: Array<Record<string, unknown>> }

async function call(sim: SimulatedUpstream, path: string, init: RequestInit = {}): Promise<Answer> {
  const headers = new Headers(init.headers)
  if (!headers.has('authorization') && !headers.has('mj-api-secret')) headers.set('authorization', BEARER.authorization)
  const res = await fetch(sim.url + path, { ...init, headers })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, contentType: res.headers.get('content-type'), text, json }
}

const post = (sim: SimulatedUpstream, path: string, body: unknown): Promise<Answer> =>
  call(sim, path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  })

const fetchTask = async (sim: SimulatedUpstream, id: string): Promise<Task> => (await call(sim, `/mj/task/${id}/fetch`)).json as Task

async function start(t: { teardown: (fn: () => unknown) => void }, opts: SimulatedUpstreamOptions = {}): Promise<SimulatedUpstream> {
  const sim = await startSimulatedUpstream({ apiKey: KEY, ...opts })
  t.teardown(() => sim.close())
  return sim
}

/** a settable clock */
function clock(start = 1_730_621_826_053): { now: () => number; set: (ms: number) => void; t0: number } {
  let value = start
  return { now: () => value, set: (ms: number) => (value = ms), t0: start }
}

const SEED_KEYS = [
  'id',
  'action',
  'customId',
  'botType',
  'prompt',
  'promptEn',
  'description',
  'state',
  'submitTime',
  'startTime',
  'finishTime',
  'imageUrl',
  'status',
  'progress',
  'failReason',
  'buttons',
  'maskBase64',
  'properties'
]

t.test('a task runs through its life to SUCCESS in real time', async (t) => {
  const sim = await start(t, { stepMs: 20 })
  const id = sim.createTask({ outcome: 'SUCCESS' })
  t.match(id, /^\d{16,19}$/)
  const seen: string[] = []
  let task: Task | undefined
  for (let i = 0; i < 200; i++) {
    task = await fetchTask(sim, id)
    if (seen.at(-1) !== task.status) seen.push(task.status)
    if (task.status === 'SUCCESS') break
    await sleep(5)
  }
  const order = ['NOT_START', 'SUBMITTED', 'IN_PROGRESS', 'SUCCESS']
  t.same([...seen].sort((a, b) => order.indexOf(a) - order.indexOf(b)), seen, 'stages only move forward')
  t.equal(task?.status, 'SUCCESS')
  t.equal(task?.progress, '100%')
})

t.test('stages by elapsed time, shaped like the documented example', async (t) => {
  const c = clock()
  const sim = await start(t, { stepMs: 1000, now: c.now, random: () => 0.5 })
  const id = sim.createTask({ prompt: 'pig --v 6.1' })
  t.equal(id, `${c.t0}500`, 'submit millis followed by three digits')

  let task = await fetchTask(sim, id)
  t.same(Object.keys(task), SEED_KEYS, 'same fields in the same order as the seed')
  t.match(task, {
    id,
    action: 'IMAGINE',
    customId: '',
    botType: '',
    prompt: 'pig --v 6.1',
    promptEn: 'pig --v 6.1',
    description: 'Submit success',
    state: '',
    submitTime: c.t0,
    startTime: 0,
    finishTime: 0,
    imageUrl: '',
    status: 'NOT_START',
    progress: '0%',
    failReason: '',
    buttons: [],
    maskBase64: '',
    properties: { finalPrompt: 'pig --v 6.1', finalZhPrompt: '' }
  })

  c.set(c.t0 + 1000)
  task = await fetchTask(sim, id)
  t.match(task, { status: 'SUBMITTED', startTime: c.t0 + 1000, progress: '0%' })

  c.set(c.t0 + 2000)
  task = await fetchTask(sim, id)
  t.match(task, { status: 'IN_PROGRESS', progress: '0%', imageUrl: '' })

  // run time is stepMs * (0.7 + 1.3 * 0.5) = 1350 ms
  c.set(c.t0 + 2000 + 675)
  task = await fetchTask(sim, id)
  t.match(task, { status: 'IN_PROGRESS', progress: '50%', finishTime: 0, buttons: [] })
  t.match(task.imageUrl, /_grid_0\.webp\?ex=[0-9a-f]+&is=[0-9a-f]+&hm=[0-9a-f]{64}&$/, 'a progress preview')

  c.set(c.t0 + 2000 + 1349)
  t.equal((await fetchTask(sim, id)).progress, '99%')

  c.set(c.t0 + 2000 + 1350)
  const first = await call(sim, `/mj/task/${id}/fetch`)
  t.equal(first.contentType, 'application/json')
  task = first.json as Task
  t.match(task, { status: 'SUCCESS', progress: '100%', finishTime: c.t0 + 3350, failReason: '' })
  const url = new URL(task.imageUrl as string)
  t.equal(url.host, 'cdn.example.com')
  t.match(url.pathname, /^\/attachments\/\d+\/\d{19}\/simuser_\d+_pig_[0-9a-f-]{36}\.png$/)
  const is = Math.floor((c.t0 + 3350) / 1000)
  t.equal(url.searchParams.get('ex'), (is + 86400).toString(16), 'ex = finishTime + one day, hex seconds')
  t.equal(url.searchParams.get('is'), is.toString(16))
  t.match(url.searchParams.get('hm'), /^[0-9a-f]{64}$/)
  t.ok((task.imageUrl as string).endsWith('&'))
  t.same(
    task.buttons.map((b) => b.label),
    ['U1', 'U2', 'U3', 'U4', '', 'V1', 'V2', 'V3', 'V4']
  )
  t.match(task.buttons[4], { emoji: '🔄', type: 2, style: 2, customId: /^MJ::JOB::reroll::0::[0-9a-f-]{36}::SOLO$/ })
  t.match(task.buttons[0], { customId: /^MJ::JOB::upsample::1::/, emoji: '' })

  c.set(c.t0 + 999_999)
  t.equal((await call(sim, `/mj/task/${id}/fetch`)).text, first.text, 'a terminal body never changes')
})

t.test('FAILURE, never-ending tasks, finished tasks and the failure ratio', async (t) => {
  const c = clock()
  const sim = await start(t, { stepMs: 100, now: c.now, imageUrlTtlSeconds: 600 })
  const failed = sim.createTask({ outcome: 'FAILURE' })
  const never = sim.createTask({ outcome: 'never' })
  const done = sim.finishedTask()
  const doneFailed = sim.finishedTask({ outcome: 'FAILURE' })

  t.match(await fetchTask(sim, done), { status: 'SUCCESS', progress: '100%', imageUrl: /^https:/ })
  const doneTask = await fetchTask(sim, done)
  t.ok((doneTask.finishTime as number) < c.t0, 'finished in the past')
  const ex = parseInt(new URL(doneTask.imageUrl as string).searchParams.get('ex') as string, 16)
  t.equal(ex, Math.floor((doneTask.finishTime as number) / 1000) + 600, 'imageUrlTtlSeconds')
  t.match(await fetchTask(sim, doneFailed), { status: 'FAILURE' })

  c.set(c.t0 + 10_000)
  const f = await fetchTask(sim, failed)
  t.match(f, { status: 'FAILURE', imageUrl: '', progress: '', buttons: [] })
  t.ok((f.failReason as string).length > 0, 'failReason is set')
  t.ok((f.finishTime as number) > c.t0 - 10_000)

  t.match(await fetchTask(sim, never), { status: 'IN_PROGRESS', progress: '99%', finishTime: 0 })
  c.set(c.t0 + 1e9)
  t.match(await fetchTask(sim, never), { status: 'IN_PROGRESS', progress: '99%' })

  const allFail = await start(t, { failureRatio: 1 })
  t.match(await fetchTask(allFail, allFail.finishedTask({ outcome: undefined })), { status: 'SUCCESS' }, 'finishedTask defaults to SUCCESS')
  const id = allFail.createTask()
  t.match((await post(allFail, '/mj/task/list-by-condition', { ids: [id] })).json, [{ id, prompt: /lighthouse/ }])
  const c2 = clock()
  const noFail = await start(t, { failureRatio: 0, now: c2.now })
  const fails = await start(t, { failureRatio: 1, now: c2.now })
  const [ok1, failed1] = [noFail.createTask(), fails.createTask()]
  c2.set(c2.t0 + 60_000)
  t.match(await fetchTask(noFail, ok1), { status: 'SUCCESS' })
  t.match(await fetchTask(fails, failed1), { status: 'FAILURE' })
})

t.test('unknown ids answer 200 null, as midjourney-proxy does', async (t) => {
  const sim = await start(t)
  for (const id of ['1700000000000999', '%E0%A4%A', 'x']) {
    const a = await call(sim, `/mj/task/${id}/fetch`)
    t.equal(a.status, 200)
    t.equal(a.contentType, 'application/json')
    t.equal(a.text, 'null')
  }
  const id = sim.createTask()
  t.match((await call(sim, `/mj/task/${id}/fetch?cache=bust`)).json, { id }, 'the query string is ignored')
})

t.test('bearer auth: a missing or wrong key is 401', async (t) => {
  const sim = await start(t)
  const id = sim.finishedTask()
  const wrong: Array<Record<string, string>> = [{ authorization: 'Bearer nope' }, { authorization: KEY }, { 'mj-api-secret': KEY }]
  for (const headers of wrong) {
    const a = await call(sim, `/mj/task/${id}/fetch`, { headers })
    t.equal(a.status, 401)
    t.equal(a.contentType, 'application/json')
    t.same(a.json, { code: 401, description: 'invalid api key' })
  }
  const raw = await fetch(`${sim.url}/mj/task/${id}/fetch`)
  t.equal(raw.status, 401, 'no header at all')
  await raw.text()
  t.equal((await call(sim, `/mj/task/${id}/fetch`, { headers: { authorization: `bearer ${KEY}` } })).status, 200, 'scheme is case-insensitive')
  t.equal((await call(sim, `/mj/task/${id}/fetch`)).status, 200)
})

t.test('mj-api-secret auth', async (t) => {
  const sim = await start(t, { authStyle: 'mj-api-secret' })
  const id = sim.finishedTask()
  t.equal((await call(sim, `/mj/task/${id}/fetch`)).status, 401, 'a bearer header is not enough')
  t.equal((await call(sim, `/mj/task/${id}/fetch`, { headers: { 'mj-api-secret': 'wrong' } })).status, 401)
  const ok = await call(sim, `/mj/task/${id}/fetch`, { headers: { 'mj-api-secret': KEY } })
  t.equal(ok.status, 200)
  t.match(ok.json, { id, status: 'SUCCESS' })
})

t.test('no apiKey: everything is open', async (t) => {
  const sim = await startSimulatedUpstream()
  t.teardown(() => sim.close())
  t.match(sim.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(sim.url, `http://127.0.0.1:${sim.port}`)
  const res = await fetch(`${sim.url}/mj/task/${sim.finishedTask()}/fetch`)
  t.equal(res.status, 200)
  await res.text()
})

t.test('submit/imagine creates a task that can be fetched', async (t) => {
  const sim = await start(t)
  const a = await post(sim, '/mj/submit/imagine', { prompt: 'a cat in a hat --ar 16:9', notifyHook: 'http://example.com/hook' })
  t.equal(a.status, 200)
  t.equal(a.contentType, 'application/json')
  const answer = a.json as { code: number; description: string; properties: object; result: string }
  t.match(answer, { code: 1, description: 'Submit success', properties: {} })
  t.match(answer.result, /^\d{16,19}$/)
  t.match(await fetchTask(sim, answer.result), { id: answer.result, action: 'IMAGINE', prompt: 'a cat in a hat --ar 16:9', status: 'NOT_START' })

  for (const body of [{}, { prompt: '' }, { prompt: '   ' }, { prompt: 42 }, '']) {
    const bad = await post(sim, '/mj/submit/imagine', body)
    t.equal(bad.status, 400)
    t.match(bad.json, { code: 4, description: 'prompt is required' })
  }
})

t.test('submit/action derives the action from the customId', async (t) => {
  const c = clock()
  const sim = await start(t, { stepMs: 100, now: c.now, failureRatio: 0 })
  const parent = sim.finishedTask()
  const parentTask = await fetchTask(sim, parent)
  const customId = (label: string): string => parentTask.buttons.find((b) => b.label === label)?.customId as string

  const cases: Array<[string, string]> = [
    [customId('U2'), 'UPSCALE'],
    [customId('V3'), 'VARIATION'],
    [customId(''), 'REROLL'],
    ['MJ::JOB::pan_left::1::3785da15-4f70-4034-9128-f3ff1ac634fa::SOLO', 'PAN'],
    ['MJ::Outpaint::50::1::3785da15-4f70-4034-9128-f3ff1ac634fa::SOLO', 'ZOOM'],
    ['MJ::CustomZoom::3785da15-4f70-4034-9128-f3ff1ac634fa', 'ZOOM'],
    ['MJ::Inpaint::1::3785da15-4f70-4034-9128-f3ff1ac634fa::SOLO', 'INPAINT'],
    ['MJ::JOB::low_variation::1::3785da15-4f70-4034-9128-f3ff1ac634fa::SOLO', 'VARIATION']
  ]
  const ids: Record<string, string> = {}
  for (const [cid, action] of cases) {
    const a = await post(sim, '/mj/submit/action', { taskId: parent, customId: cid })
    t.equal(a.status, 200)
    const { code, result } = a.json as { code: number; result: string }
    t.equal(code, 1, action)
    t.match(await fetchTask(sim, result), { action, customId: cid, prompt: 'pig --v 6.1' })
    ids[action] = result
  }

  c.set(c.t0 + 60_000)
  const upscaled = await fetchTask(sim, ids.UPSCALE as string)
  t.equal(upscaled.status, 'SUCCESS')
  t.ok(upscaled.buttons.some((b) => b.label === 'Vary (Strong)'), 'an upscale gets the single-image buttons')
  t.equal((await fetchTask(sim, ids.VARIATION as string)).buttons.length, 9, 'a variation is a grid again')

  const missing = await post(sim, '/mj/submit/action', { taskId: '1700000000000999', customId: customId('U1') })
  t.equal(missing.status, 200)
  t.match(missing.json, { code: 3, description: 'task not found', result: null })

  const running = sim.createTask({ outcome: 'never' })
  t.match((await post(sim, '/mj/submit/action', { taskId: running, customId: customId('U1') })).json, { code: 4 }, 'parent must be SUCCESS')

  for (const body of [{}, { taskId: parent }, { customId: customId('U1') }, { taskId: 5, customId: 'x' }]) {
    const bad = await post(sim, '/mj/submit/action', body)
    t.equal(bad.status, 400)
    t.match(bad.json, { code: 4 })
  }
  const invalid = await post(sim, '/mj/submit/action', { taskId: parent, customId: 'MJ::Nothing::1' })
  t.equal(invalid.status, 400)
  t.match(invalid.json, { code: 4, description: 'customId is invalid' })
})

t.test('the other submit routes accept and create tasks', async (t) => {
  const c = clock()
  const sim = await start(t, { stepMs: 100, now: c.now, failureRatio: 0 })
  const cases: Array<[string, unknown, string]> = [
    ['blend', { base64Array: ['data:image/png;base64,AAAA', 'data:image/png;base64,BBBB'] }, 'BLEND'],
    ['describe', { base64: 'data:image/png;base64,AAAA' }, 'DESCRIBE'],
    ['modal', { taskId: '1', prompt: 'a boat', maskBase64: '' }, 'INPAINT'],
    ['shorten', { prompt: 'a very long prompt about a fox' }, 'SHORTEN'],
    ['change', { taskId: '1', action: 'REROLL' }, 'REROLL'],
    ['change', { taskId: '1', action: 'DESTROY' }, 'VARIATION'],
    ['change', { taskId: '1', action: 7 }, 'VARIATION'],
    ['simple-change', { content: '1320098173412546 U2' }, 'UPSCALE'],
    ['simple-change', { content: '1320098173412546 r' }, 'REROLL'],
    ['simple-change', { content: '1320098173412546' }, 'VARIATION'],
    ['simple-change', {}, 'VARIATION'],
    ['upload-discord-images', { base64Array: ['data:image/png;base64,AAAA'] }, 'UPLOAD']
  ]
  const ids: string[] = []
  for (const [kind, body, action] of cases) {
    const a = await post(sim, `/mj/submit/${kind}`, body)
    t.equal(a.status, 200, kind)
    const answer = a.json as { code: number; result: string }
    t.match(answer, { code: 1, description: 'Submit success', properties: {} })
    t.match(await fetchTask(sim, answer.result), { action }, `${kind} → ${action}`)
    ids.push(answer.result)
  }
  c.set(c.t0 + 60_000)
  t.equal((await fetchTask(sim, ids[0] as string)).buttons.length, 9, 'a blend is a grid')
  t.same((await fetchTask(sim, ids[1] as string)).buttons, [], 'a describe has no buttons')
  t.match((await fetchTask(sim, ids[2] as string)).prompt, 'a boat')
})

t.test('list-by-condition and list', async (t) => {
  const sim = await start(t)
  const a = sim.createTask()
  const b = sim.finishedTask()
  const c = sim.createTask({ outcome: 'never' })
  const listed = await post(sim, '/mj/task/list-by-condition', { ids: [c, '1700000000000999', a, 17] })
  t.equal(listed.status, 200)
  t.equal(listed.contentType, 'application/json')
  t.same(
    (listed.json as Task[]).map((x) => x.id),
    [a, c],
    'order as stored, unknown ids left out'
  )
  t.same((await post(sim, '/mj/task/list-by-condition', {})).json, [], 'no ids, no tasks')
  t.same((await post(sim, '/mj/task/list-by-condition', { ids: 'nope' })).json, [])
  const all = await call(sim, '/mj/task/list')
  t.same(
    (all.json as Task[]).map((x) => x.id),
    [a, b, c]
  )
  t.same((await call(sim, '/mj/task/list', { headers: { authorization: 'Bearer no' } })).status, 401)
})

t.test('image-seed', async (t) => {
  const sim = await start(t, { random: () => 0.3 })
  const ok = await call(sim, `/mj/task/${sim.finishedTask()}/image-seed`)
  t.equal(ok.status, 200)
  t.match(ok.json, { code: 1, description: 'success', result: /^\d{9,10}$/ })
  for (const id of [sim.createTask({ outcome: 'never' }), sim.finishedTask({ outcome: 'FAILURE' }), '1700000000000999']) {
    const nf = await call(sim, `/mj/task/${id}/image-seed`)
    t.equal(nf.status, 200)
    t.match(nf.json, { code: 4, description: 'not found' })
  }
})

t.test('anything else is 404 JSON', async (t) => {
  const sim = await start(t)
  const cases: Array<[string, string]> = [
    ['GET', '/'],
    ['GET', '/mj/submit/imagine'],
    ['POST', '/mj/task/1/fetch'],
    ['POST', '/mj/submit/constructor'],
    ['POST', '/mj/submit/Imagine'],
    ['POST', '/mj/task/list'],
    ['DELETE', '/mj/task/1/fetch'],
    ['GET', '/mj/task/1/2/fetch'],
    ['GET', '/mj/task/list-by-condition']
  ]
  for (const [method, path] of cases) {
    const a = await call(sim, path, { method })
    t.equal(a.status, 404, `${method} ${path}`)
    t.equal(a.contentType, 'application/json')
    t.match(a.json, { status: 404, error: 'Not Found', path })
  }
  t.equal(sim.stats.byRoute.other, cases.length)
})

t.test('request bodies: invalid JSON 400, non-object 400, too large 413', async (t) => {
  const sim = await start(t, { maxBodyBytes: 1024 })
  for (const body of ['{"prompt":', 'nope']) {
    const a = await post(sim, '/mj/submit/imagine', body)
    t.equal(a.status, 400)
    t.match(a.json, { code: 4, description: 'invalid JSON body' })
  }
  for (const body of ['[]', '"prompt"', 'null', '3']) {
    const a = await post(sim, '/mj/submit/imagine', body)
    t.equal(a.status, 400)
    t.match(a.json, { code: 4, description: 'body must be a JSON object' })
  }
  const big = await post(sim, '/mj/submit/blend', { base64Array: ['x'.repeat(64 * 1024)] })
  t.equal(big.status, 413)
  t.match(big.json, { code: 4, description: 'request body too large' })
  const fine = await post(sim, '/mj/submit/imagine', { prompt: 'x'.repeat(900) })
  t.equal(fine.status, 200, 'the connection is still usable')
})

t.test('stats count every request, and lastRequest shows what was received', async (t) => {
  const sim = await start(t)
  t.equal(sim.lastRequest, undefined)
  const id = sim.finishedTask()
  await call(sim, `/mj/task/${id}/fetch`)
  await call(sim, `/mj/task/${id}/fetch`, { headers: { authorization: 'Bearer wrong' } })
  await call(sim, `/mj/task/${id}/image-seed`)
  await post(sim, '/mj/submit/imagine', { prompt: 'a' })
  await post(sim, '/mj/submit/imagine', 'not json')
  await post(sim, '/mj/submit/action', { taskId: id, customId: 'MJ::JOB::upsample::1::x' })
  await post(sim, '/mj/task/list-by-condition', { ids: [id] })
  await call(sim, '/mj/task/list')
  await call(sim, '/nowhere?x=1', { headers: { 'mj-api-secret': 'client-token', cookie: 'a=b' } })
  t.equal(sim.stats.requests, 9)
  t.same(sim.stats.byRoute, {
    'GET /mj/task/:id/fetch': 2,
    'GET /mj/task/:id/image-seed': 1,
    'POST /mj/submit/imagine': 2,
    'POST /mj/submit/action': 1,
    'POST /mj/task/list-by-condition': 1,
    'GET /mj/task/list': 1,
    other: 1
  })
  t.match(sim.lastRequest, { method: 'GET', path: '/nowhere', headers: { 'mj-api-secret': 'client-token', cookie: 'a=b' } })
})

t.test('bodyPadBytes grows the body by about that much', async (t) => {
  const c = clock()
  const sim = await start(t, { now: c.now, random: () => 0.5 })
  const plain = sim.createTask({ outcome: 'SUCCESS', prompt: 'a fox' })
  const padded = sim.createTask({ outcome: 'SUCCESS', prompt: 'a fox', bodyPadBytes: 3000 })
  const none = sim.createTask({ outcome: 'SUCCESS', prompt: 'a fox', bodyPadBytes: -5 })
  const donePadded = sim.finishedTask({ bodyPadBytes: 1000 })
  c.set(c.t0 + 60_000)
  const [a, b, n] = await Promise.all([plain, padded, none].map((id) => call(sim, `/mj/task/${id}/fetch`)))
  const grow = Buffer.byteLength((b as Answer).text) - Buffer.byteLength((a as Answer).text)
  t.ok(grow >= 3000 && grow <= 3010, `grew by ${grow}`)
  t.equal(Buffer.byteLength((n as Answer).text), Buffer.byteLength((a as Answer).text), 'a non-positive pad is no pad')
  t.ok(Buffer.byteLength((b as Answer).text) > 4500, 'a success body of ~5 KB')
  const task = (b as Answer).json as Task
  t.ok((task.prompt as string).startsWith('a fox'))
  t.equal(task.prompt, task.promptEn)
  t.match(task.imageUrl, /_a_/, 'the image name uses the unpadded prompt')
  t.ok(((await fetchTask(sim, donePadded)).prompt as string).length >= 333 + 'pig --v 6.1'.length)
})

t.test('ids stay unique even when randomness repeats', async (t) => {
  const sim = await start(t, { random: () => 0, now: () => 1_700_000_000_000 })
  const ids = [sim.createTask(), sim.createTask(), sim.createTask({ prompt: '!!!' })]
  t.same(ids, ['1700000000000000', '1700000000000001', '1700000000000002'])
  t.match(await fetchTask(sim, ids[2] as string), { id: ids[2], imageUrl: '' })
  t.equal((await post(sim, '/mj/task/list-by-condition', { ids })).json instanceof Array, true)
})

t.test('latencyMs delays answers; close() cancels pending ones and idle keep-alive sockets', async (t) => {
  const sim = await startSimulatedUpstream({ latencyMs: 60 })
  const started = Date.now()
  const res = await fetch(`${sim.url}/mj/task/1/fetch`)
  t.equal(await res.text(), 'null')
  t.ok(Date.now() - started >= 50, 'delayed')
  const pending = fetch(`${sim.url}/mj/task/1/fetch`).then(
    (r) => r.status,
    () => 'closed'
  )
  await sleep(10)
  await sim.close()
  t.equal(await pending, 'closed', 'a pending answer is dropped on close')
})

t.test('latencyJitterMs spreads the delay around latencyMs, never below 0', async (t) => {
  const draws = [0, 1, 0.5]
  // wide enough that a busy machine cannot blur 100 ms into 1,000 ms (or 1,000 into 1,900)
  const sim = await startSimulatedUpstream({ latencyMs: 1000, latencyJitterMs: 900, random: () => draws.shift() ?? 0.5 })
  t.teardown(() => sim.close())
  const took = async (): Promise<number> => {
    const started = Date.now()
    await (await fetch(`${sim.url}/mj/task/1/fetch`)).text()
    return Date.now() - started
  }
  const [low, high] = [await took(), await took()]
  t.ok(low >= 95 && low < 700, `1000 - 900 ms (took ${low})`)
  t.ok(high >= 1850, `1000 + 900 ms (took ${high})`)
  const none = await startSimulatedUpstream({ latencyMs: 5, latencyJitterMs: 50, random: () => 0 })
  t.teardown(() => none.close())
  const started = Date.now()
  t.equal(await (await fetch(`${none.url}/mj/task/1/fetch`)).text(), 'null', 'a delay below 0 is none')
  t.ok(Date.now() - started < 1000)
})

t.test('close() resolves with an idle keep-alive connection open', async (t) => {
  const sim = await startSimulatedUpstream()
  const res = await fetch(`${sim.url}/mj/task/1/fetch`)
  await res.text()
  const closed = Date.now()
  await sim.close()
  t.ok(Date.now() - closed < 2000, 'did not wait for the keep-alive timeout')
})

t.test('a client that goes away mid-body gets nothing and breaks nothing', async (t) => {
  const sim = await start(t)
  await new Promise<void>((resolve) => {
    const socket = connect(sim.port, '127.0.0.1', () => {
      socket.write(
        `POST /mj/submit/imagine HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"prompt":`
      )
      setTimeout(() => socket.destroy(), 30)
    })
    socket.on('close', () => resolve())
  })
  await sleep(50)
  t.equal(sim.stats.byRoute['POST /mj/submit/imagine'], 1)
  t.equal((await post(sim, '/mj/submit/imagine', { prompt: 'still fine' })).status, 200)

  const slow = await start(t, { latencyMs: 80 })
  const controller = new AbortController()
  const aborted = send('GET', `${slow.url}/mj/task/1/fetch`, { headers: BEARER, signal: controller.signal }).catch(() => 'aborted')
  // abort once the request has arrived (a busy machine may take longer than any fixed pause)
  await waitFor(() => slow.stats.requests === 1)
  controller.abort()
  t.equal(await aborted, 'aborted')
  await sleep(100)
  t.equal(slow.stats.requests, 1)
  t.equal((await call(slow, '/mj/task/list')).status, 200, 'and the simulation still answers')
})

t.test('listen options: host, port, and a port that is taken', async (t) => {
  const a = await start(t, { host: 'localhost' })
  t.equal(a.url, `http://localhost:${a.port}`)
  await t.rejects(startSimulatedUpstream({ host: 'localhost', port: a.port }), { code: 'EADDRINUSE' })
  const v6 = await startSimulatedUpstream({ host: '::1' }).catch(() => undefined)
  if (v6) {
    t.equal(v6.url, `http://[::1]:${v6.port}`)
    const res = await fetch(`${v6.url}/mj/task/1/fetch`)
    t.equal(await res.text(), 'null')
    await v6.close()
  } else {
    t.pass('no IPv6 loopback here')
  }
})

// ---------------------------------------------------------------------------------------------
// Scripting: one-shot behaviours, handlers, counts and recorded requests

/** the part of a tap Test these helpers need */
interface Teardown {
  teardown(fn: () => unknown): void
}

async function upstream(tt: Teardown, handler?: Handler): Promise<SimulatedUpstream> {
  const up = await startSimulatedUpstream({ inventUnknownTasks: true, handler })
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

t.test('inventUnknownTasks: a fetch of any id answers a SUCCESS task for it; other routes are simulated', async (t) => {
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

  const list = await get(`${up.url}/mj/task/list`)
  t.same([list.status, list.json()], [200, []], 'an invented task is not listed')
  const seed = await get(`${up.url}/mj/task/abc/image-seed`)
  t.match([seed.status, seed.json()], [200, { code: 4 }], 'nor has it a seed')
  for (const [method, path] of [
    ['POST', '/mj/task/abc/fetch'],
    ['GET', '/nope']
  ] as const) {
    const res = await request(`${up.url}${path}`, { method })
    const text = await res.body.text()
    t.equal(res.statusCode, 404, `${method} ${path} is 404`)
    t.match(JSON.parse(text), { status: 404, error: 'Not Found', path: path })
  }
  t.equal(up.calls, 5)
})

t.test('records method, url, headers and body of every request, in order', async (t) => {
  const up = await upstream(t)
  await get(`${up.url}/mj/task/a1/fetch?x=1`, { authorization: 'Bearer up-key', 'x-trace': 'abc' })
  await postJson(`${up.url}/mj/submit/imagine`, { prompt: 'pig' }, { 'mj-api-secret': 's3cret' })
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
  const up = await startSimulatedUpstream()
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
  const up = await startSimulatedUpstream()
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

  const p = postJson(`${up.url}/mj/submit/imagine`, { a: 1 })
  const r = await p
  t.equal(r.status, 400, 'the simulation: an imagine needs a prompt')
  t.equal(up.requests[3]?.body.toString(), '{"a":1}')
})

t.test('echo: the request as received comes back as JSON, with the status and delay asked for', async (t) => {
  const up = await upstream(t)
  up.enqueue({ kind: 'echo' }, { kind: 'echo', status: 418, delayMs: 30 })
  const a = await postJson(`${up.url}/mj/submit/imagine?x=1`, { prompt: 'pig' }, { 'x-trace': 'abc' })
  t.equal(a.status, 200)
  t.match(a.json(), { method: 'POST', url: '/mj/submit/imagine?x=1', headers: { 'x-trace': 'abc', 'content-type': 'application/json' }, body: '{"prompt":"pig"}' })
  const started = Date.now()
  const b = await get(`${up.url}/mj/task/1/fetch`)
  t.equal(b.status, 418)
  t.ok(Date.now() - started >= 25, 'delayed')
  t.match(b.json(), { method: 'GET', url: '/mj/task/1/fetch', body: '' })
})

t.test('scripting falls through to the simulation: a handler answering undefined, or an enqueued simulate', async (t) => {
  const sim = await startSimulatedUpstream({ apiKey: KEY, stepMs: 10, failureRatio: 0, handler: (req) => (req.route === 'GET /mj/task/list' ? { kind: 'json', status: 503, body: {} } : undefined) })
  t.teardown(() => sim.close())
  t.equal((await call(sim, '/mj/task/list')).status, 503, 'the handler answers the route it scripts')
  const submitted = await post(sim, '/mj/submit/imagine', { prompt: 'a cat' })
  t.match(submitted.json, { code: 1, result: /^\d+$/ }, 'the rest is simulated')
  sim.enqueue({ kind: 'simulate' })
  t.equal((await call(sim, '/mj/task/list')).status, 200, 'an enqueued simulate answers as the simulation')
  sim.setHandler(undefined)
  t.equal((await call(sim, '/mj/task/list')).status, 200, 'no handler: the simulation')
  sim.reset()
  t.equal((await call(sim, '/mj/task/list')).status, 503, 'reset() brings the first handler back')
  t.same([sim.calls, sim.stats.requests, sim.stats.byRoute], [1, 1, { 'GET /mj/task/list': 1 }], 'and the counts start again')
})

t.test('requireKey: from then on the simulation asks for that key, in that style; undefined accepts any', async (t) => {
  const sim = await start(t)
  sim.requireKey('other-key')
  t.equal((await call(sim, '/mj/task/list')).status, 401, 'the old key no longer opens it')
  t.equal((await call(sim, '/mj/task/list', { headers: { authorization: 'Bearer other-key' } })).status, 200)
  sim.requireKey('other-key', 'mj-api-secret')
  t.equal((await call(sim, '/mj/task/list', { headers: { authorization: 'Bearer other-key' } })).status, 401)
  t.equal((await call(sim, '/mj/task/list', { headers: { 'mj-api-secret': 'other-key' } })).status, 200)
  sim.requireKey(undefined)
  t.equal((await call(sim, '/mj/task/list', { headers: { authorization: 'Bearer nonsense' } })).status, 200)
})

t.test('recordRequests: false keeps the counts and the last request only (demo, benchmark)', async (t) => {
  const sim = await start(t, { recordRequests: false })
  await call(sim, '/mj/task/list')
  await post(sim, '/mj/submit/imagine', { prompt: 'x' })
  t.equal(sim.calls, 2)
  t.equal(sim.requests.length, 0)
  t.equal(sim.callsTo('/mj/'), 0, 'callsTo counts recorded requests')
  t.equal(sim.lastRequest?.body.toString(), '{"prompt":"x"}')
  t.equal(sim.lastRequest?.route, 'POST /mj/submit/imagine')
})

t.test('behaviours on routes without a task id, an empty dripped body, a handler throwing a non-Error', async (t) => {
  const up = await upstream(t, () => {
    throw 'plain string'
  })
  const threw = await get(`${up.url}/mj/task/1/fetch`)
  t.same([threw.status, threw.json()], [500, { error: 'simulated upstream handler threw', message: 'plain string' }])

  up.enqueue({ kind: 'huge', bytes: 10 }, { kind: 'slow-body', body: '', chunkDelayMs: 5 }, { kind: 'reset-mid-body' })
  const huge = await get(`${up.url}/other`)
  t.equal((huge.json() as { id: string }).id, 'huge', 'a huge body off the fetch route is task "huge"')
  const empty = await get(`${up.url}/other`)
  t.same([empty.status, empty.body], [200, ''])
  const cut = await request(`${up.url}/other`)
  await t.rejects(cut.body.text(), 'the body is cut short')
  t.equal(up.calls, 4)
})

t.test('idFromUrl: an unparsable URL has no id; an undecodable one is taken as is', async (t) => {
  t.equal(idFromUrl('http://['), undefined)
  t.equal(idFromUrl('/mj/task/%E0%A4%A/fetch'), '%E0%A4%A')
})

t.test('net helpers: chunked sends without content-length; paths go out exactly as written', async (t) => {
  const up = await upstream(t)
  up.enqueue({ kind: 'echo' }, { kind: 'echo' })
  const chunked = (await send('POST', `${up.url}/x`, { body: 'abc', chunked: true })).json() as { headers: Record<string, string>; body: string }
  t.equal(chunked.headers['transfer-encoding'], 'chunked')
  t.equal(chunked.headers['content-length'], undefined)
  t.equal(chunked.body, 'abc')
  const raw = (await get(`${up.url}/mj/task/a/../%2F./fetch?q=1`)).json() as { url: string }
  t.equal(raw.url, '/mj/task/a/../%2F./fetch?q=1')
})

t.test('hold and release: requests wait (counted, recorded) until release() answers them all, in order', async (t) => {
  const up = await upstream(t)
  up.hold()
  up.hold()
  const answers = [get(`${up.url}/mj/task/h1/fetch`), get(`${up.url}/mj/task/h2/fetch`)]
  await waitFor(() => up.requests.length === 2)
  const early = await within(answers[0] as Promise<unknown>, 100)
  t.equal(early.done, 'pending', 'held')
  up.enqueue({ kind: 'json', status: 503, body: { busy: true } })
  up.release()
  const [a, b] = await Promise.all(answers)
  t.same([a?.status, a?.json()], [503, { busy: true }], 'answered as at release time: the queue first')
  t.equal((b?.json() as { id: string }).id, 'h2')
  t.equal((await get(`${up.url}/mj/task/h3/fetch`)).status, 200, 'no longer holding')
  up.release()
})
