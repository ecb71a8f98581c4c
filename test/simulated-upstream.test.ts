import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startSimulatedUpstream, type SimulatedUpstream, type SimulatedUpstreamOptions } from '../src/demo/simulated-upstream.js'

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
  const sim = await startSimulatedUpstream({ latencyMs: 100, latencyJitterMs: 80, random: () => draws.shift() ?? 0.5 })
  t.teardown(() => sim.close())
  const took = async (): Promise<number> => {
    const started = Date.now()
    await (await fetch(`${sim.url}/mj/task/1/fetch`)).text()
    return Date.now() - started
  }
  const [low, high] = [await took(), await took()]
  t.ok(low >= 15 && low < 120, `100 - 80 ms (took ${low})`)
  t.ok(high >= 170, `100 + 80 ms (took ${high})`)
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
  const aborted = fetch(`${slow.url}/mj/task/1/fetch`, { headers: BEARER, signal: controller.signal }).catch(() => 'aborted')
  await sleep(20)
  controller.abort()
  t.equal(await aborted, 'aborted')
  await sleep(100)
  t.equal(slow.stats.requests, 1)
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
