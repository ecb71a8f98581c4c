/**
 * The one fake of the Midjourney task API (midjourney-proxy as relayed by QuickRouter), on node:http only.
 * Used by `npm run demo`, by the benchmark and by every test that needs an upstream.
 *
 * Realistic by default: tasks move through NOT_START → SUBMITTED → IN_PROGRESS ("0%".."99%") → SUCCESS | FAILURE
 * by the time elapsed since submission, one `stepMs` per stage; submits answer {code: 1, result: id}; list,
 * list-by-condition and image-seed answer from the same tasks. Bodies are shaped like the upstream's documented
 * example (QuickRouter fills unset numbers with 0 and strings with "").
 *
 * Scriptable per test: every request is counted (per route too) and recorded with its complete body; the oldest
 * enqueued one-shot Behavior answers it if any, else the handler, else (handler absent or answering undefined)
 * the simulation. Behaviors: a JSON or raw answer with any status (optionally delayed), hang, reset, reset in
 * mid-body, a huge or dripping body, an echo of the request, or the simulation's own answer.
 *
 *   const up = await startSimulatedUpstream()
 *   up.enqueue({ kind: 'json', status: 503, body: { error: 'busy' } })   // first call only
 *   up.setHandler((req) => ({ kind: 'json', body: taskBody(idFromUrl(req.url) ?? 'x', 'SUCCESS') }))
 *
 * New routes (image bytes, pushes) go into `routeKey` and `simulate`, and are scriptable like the rest.
 */
import { createHash, createHmac } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pngBytes } from './png.js'

export interface SimulatedUpstreamOptions {
  /** listen address; default 127.0.0.1 */
  host?: string
  /** listen port; default 0 (random) */
  port?: number
  /** when set, every request must carry it per `authStyle`, else 401 JSON */
  apiKey?: string
  /** `bearer` (Authorization: Bearer KEY, the default) or `mj-api-secret` (header `mj-api-secret: KEY`) */
  authStyle?: 'bearer' | 'mj-api-secret'
  /** time per life stage; default 1500 (a task finishes ~4-6 s after submission) */
  stepMs?: number
  /** share of new tasks that end in FAILURE; default 0.2 */
  failureRatio?: number
  /** the signed imageUrl's `ex=` lies this far after finishTime; default 86400 */
  imageUrlTtlSeconds?: number
  /** injectable randomness for deterministic tests; default Math.random */
  random?: () => number
  /** injectable clock (milliseconds) for deterministic tests; default Date.now */
  now?: () => number
  /** extra delay before every answer (simulated network/upstream latency); default 0 */
  latencyMs?: number
  /** the delay varies uniformly by up to this much either way (never below 0), as a real upstream's does; default 0 */
  latencyJitterMs?: number
  /** request bodies larger than this are answered 413; default 25 MiB */
  maxBodyBytes?: number
  /** a fetch of an id never submitted answers a SUCCESS task with that id (taskBody) instead of null; default false */
  inventUnknownTasks?: boolean
  /** answers every request the queue does not; undefined from it means the simulation answers */
  handler?: Handler
  /** keep every request in `requests` (tests); false keeps only counts and the last one (demo, benchmark); default true */
  recordRequests?: boolean
  /**
   * image links point at this server (`{url}/attachments/…`), which answers them with real PNG bytes until their
   * `ex=` passes and 404 after, as Discord's CDN does; default false (links to cdn.example.com, never answered)
   */
  serveImages?: boolean
}

export interface SimulatedUpstreamStats {
  requests: number
  /** keys like 'GET /mj/task/:id/fetch', 'POST /mj/submit/imagine', 'other' */
  byRoute: Record<string, number>
}

export interface RecordedRequest {
  readonly method: string
  /** path and query, as sent */
  readonly url: string
  /** the url without its query */
  readonly path: string
  /** the stats key, e.g. 'GET /mj/task/:id/fetch' */
  readonly route: string
  readonly headers: IncomingHttpHeaders
  /** the complete body (up to maxBodyBytes) */
  readonly body: Buffer
}

/** @deprecated the same as RecordedRequest */
export type SimulatedRequest = RecordedRequest

export type Behavior =
  /** JSON.stringify(body) (an `undefined` body sends an empty body); default status 200 */
  | { kind: 'json'; status?: number; body: unknown; headers?: Record<string, string>; delayMs?: number }
  /** exactly these bytes (garbage included); default status 200, default content-type application/json */
  | { kind: 'raw'; status?: number; body: string | Buffer; headers?: Record<string, string>; delayMs?: number }
  /** the request as received, as JSON {method, url, headers, body} (body as UTF-8 text); default status 200 */
  | { kind: 'echo'; status?: number; delayMs?: number }
  /** what the simulation answers (after the configured latency) */
  | { kind: 'simulate' }
  /** read the request, never answer (until close()) */
  | { kind: 'hang' }
  /** destroy the socket (TCP RST) without answering */
  | { kind: 'reset' }
  /** send headers with a content-length larger than what is sent, then part of the body, then close the socket */
  | { kind: 'reset-mid-body'; status?: number; partial?: string }
  /**
   * a JSON object body (a task object plus a `padding` string) of exactly `bytes` bytes when `bytes`
   * is at least the size of the bare task object (about 2 KB; else that bare object), streamed in
   * 64 KiB writes with backpressure; with `chunked` there is no content-length
   */
  | { kind: 'huge'; bytes: number; status?: number; chunked?: boolean }
  /**
   * the body dripped `chunkBytes` bytes (default 1) every `chunkDelayMs`, the first piece right after
   * the headers; the headers carry the full content-length, default status 200
   */
  | { kind: 'slow-body'; body: string; chunkDelayMs: number; chunkBytes?: number; status?: number }

/** `callIndex` is the 0-based index of the request among all since start (or the last reset()), queued ones included */
export type Handler = (req: RecordedRequest, callIndex: number) => Behavior | undefined

export interface SimulatedUpstream {
  /** http://host:port (origin, no trailing slash) */
  readonly url: string
  readonly port: number
  /** counts since start or the last reset() */
  readonly stats: SimulatedUpstreamStats
  /** the most recent request as received (headers and body included), to prove what a gateway forwards */
  readonly lastRequest: RecordedRequest | undefined
  /** total requests received since start or the last reset(), counted on arrival */
  readonly calls: number
  /** every complete request, in order (with recordRequests, the default) */
  readonly requests: readonly RecordedRequest[]
  /** recorded requests whose url (path + query) starts with the prefix */
  callsTo(pathPrefix: string): number
  /** the handler for every request not served from the queue (undefined: the simulation answers) */
  setHandler(h: Handler | undefined): void
  /** one-shot behaviours, used first-in first-out before the handler */
  enqueue(...b: Behavior[]): void
  /** clears counters, recorded requests and the queue; the handler goes back to the one given at start. Tasks stay. */
  reset(): void
  /** from now on requests wait unanswered (still counted and recorded), until release() */
  hold(): void
  /** answers every waiting request, in order of arrival, as it would have been answered then; stops holding */
  release(): void
  /** from now on every simulated answer needs this key (per `authStyle`); undefined accepts any request */
  requireKey(apiKey: string | undefined, authStyle?: 'bearer' | 'mj-api-secret'): void
  /** creates an IMAGINE task submitted now; returns its id. `never` stays IN_PROGRESS forever */
  createTask(opts?: { prompt?: string; outcome?: 'SUCCESS' | 'FAILURE' | 'never'; bodyPadBytes?: number }): string
  /** creates an IMAGINE task that is already terminal; returns its id */
  finishedTask(opts?: { outcome?: 'SUCCESS' | 'FAILURE'; bodyPadBytes?: number; imageLinkTtlSeconds?: number }): string
  /** ends hanging and in-progress responses, destroys every socket, clears timers; idempotent */
  close(): Promise<void>
}

type Outcome = 'SUCCESS' | 'FAILURE' | 'never'

interface Button {
  customId: string
  emoji: string
  label: string
  type: number
  style: number
}

interface TaskRecord {
  readonly id: string
  readonly action: string
  readonly customId: string
  readonly prompt: string
  readonly submitTime: number
  /** submitTime + stepMs: SUBMITTED from here */
  readonly startTime: number
  /** submitTime + 2 * stepMs: IN_PROGRESS from here */
  readonly progressTime: number
  /** when the task turns terminal; Infinity for `never` */
  readonly finishTime: number
  readonly outcome: Outcome
  readonly imageUrl: string
  readonly previewUrl: string
  readonly failReason: string
  readonly buttons: readonly Button[]
  readonly seed: string
  /** the serialized terminal body, computed once */
  terminalJson?: string
}

const JSON_TYPE = 'application/json'
const CDN = 'https://cdn.example.com/attachments'
const CDN_CHANNEL = '1300842274347028520'
const DEFAULT_MAX_BODY = 25 * 1024 * 1024
const PAD_WORDS = 'highly detailed, cinematic lighting, volumetric fog, 35mm film grain, '

const FAIL_REASONS = [
  'Banned prompt detected',
  '[Invalid parameter] Invalid value provided for argument --v',
  'Request cancelled due to image filters',
  'There was an error processing your request. Please try again.'
] as const

const SUBMIT_ACTIONS: Readonly<Record<string, string>> = {
  blend: 'BLEND',
  describe: 'DESCRIBE',
  modal: 'INPAINT',
  shorten: 'SHORTEN',
  change: 'VARIATION',
  'simple-change': 'VARIATION',
  'upload-discord-images': 'UPLOAD'
}

const CHANGE_ACTIONS = new Set(['UPSCALE', 'VARIATION', 'REROLL'])
const SIMPLE_CHANGE_ACTIONS: Readonly<Record<string, string>> = { U: 'UPSCALE', V: 'VARIATION', R: 'REROLL' }

/** customId pattern → action, as midjourney-proxy derives it */
const CUSTOM_ID_ACTIONS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^MJ::JOB::upsample/, 'UPSCALE'],
  [/^MJ::JOB::(?:low_|high_)?variation::/, 'VARIATION'],
  [/^MJ::JOB::reroll::/, 'REROLL'],
  [/^MJ::JOB::pan_/, 'PAN'],
  [/^MJ::(?:Outpaint|CustomZoom)::/, 'ZOOM'],
  [/^MJ::Inpaint::/, 'INPAINT']
]

/** actions whose result is a 2x2 grid (U1-U4, reroll, V1-V4); UPSCALE gets the single-image set */
const GRID_ACTIONS = new Set(['IMAGINE', 'VARIATION', 'REROLL', 'PAN', 'ZOOM', 'INPAINT', 'BLEND'])

/** an already-serialized JSON body */
class RawJson {
  constructor(readonly json: string) {}
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown
  ) {
    super('bad request')
  }
}

function failBody(code: number, description: string): Record<string, unknown> {
  return { code, description, properties: {}, result: null }
}

function button(customId: string, label: string, emoji = ''): Button {
  return { customId, emoji, label, type: 2, style: 2 }
}

function gridButtons(hash: string): Button[] {
  const b: Button[] = []
  for (let i = 1; i <= 4; i++) b.push(button(`MJ::JOB::upsample::${i}::${hash}`, `U${i}`))
  b.push(button(`MJ::JOB::reroll::0::${hash}::SOLO`, '', '🔄'))
  for (let i = 1; i <= 4; i++) b.push(button(`MJ::JOB::variation::${i}::${hash}`, `V${i}`))
  return b
}

function upscaleButtons(hash: string): Button[] {
  return [
    button(`MJ::JOB::upsample_v6_2x_subtle::1::${hash}::SOLO`, 'Upscale (Subtle)'),
    button(`MJ::JOB::upsample_v6_2x_creative::1::${hash}::SOLO`, 'Upscale (Creative)'),
    button(`MJ::JOB::high_variation::1::${hash}::SOLO`, 'Vary (Strong)', '🪄'),
    button(`MJ::JOB::low_variation::1::${hash}::SOLO`, 'Vary (Subtle)', '🪄'),
    button(`MJ::Inpaint::1::${hash}::SOLO`, 'Vary (Region)', '🖌️'),
    button(`MJ::Outpaint::50::1::${hash}::SOLO`, 'Zoom Out 2x', '🔍'),
    button(`MJ::Outpaint::75::1::${hash}::SOLO`, 'Zoom Out 1.5x', '🔍'),
    button(`MJ::CustomZoom::${hash}`, 'Custom Zoom', '🔍'),
    button(`MJ::JOB::pan_left::1::${hash}::SOLO`, '', '⬅️'),
    button(`MJ::JOB::pan_right::1::${hash}::SOLO`, '', '➡️'),
    button(`MJ::JOB::pan_up::1::${hash}::SOLO`, '', '⬆️'),
    button(`MJ::JOB::pan_down::1::${hash}::SOLO`, '', '⬇️')
  ]
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.trim() !== ''
}

function routeKey(method: string, path: string): string {
  if (method === 'GET') {
    if (/^\/mj\/task\/[^/]+\/fetch$/.test(path)) return 'GET /mj/task/:id/fetch'
    if (/^\/mj\/task\/[^/]+\/image-seed$/.test(path)) return 'GET /mj/task/:id/image-seed'
    if (path === '/mj/task/list') return 'GET /mj/task/list'
  } else if (method === 'POST') {
    if (path === '/mj/task/list-by-condition') return 'POST /mj/task/list-by-condition'
    const m = /^\/mj\/submit\/([a-z-]+)$/.exec(path)
    const kind = m?.[1]
    if (kind === 'imagine' || kind === 'action' || (kind !== undefined && Object.hasOwn(SUBMIT_ACTIONS, kind))) return `POST ${path}`
  }
  return 'other'
}

export async function startSimulatedUpstream(opts: SimulatedUpstreamOptions = {}): Promise<SimulatedUpstream> {
  const host = opts.host ?? '127.0.0.1'
  const stepMs = opts.stepMs ?? 1500
  const failureRatio = opts.failureRatio ?? 0.2
  const ttlSeconds = opts.imageUrlTtlSeconds ?? 86400
  const random = opts.random ?? Math.random
  const clock = opts.now ?? Date.now
  const latencyMs = opts.latencyMs ?? 0
  const jitterMs = opts.latencyJitterMs ?? 0
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY
  let authStyle = opts.authStyle ?? 'bearer'
  let apiKey = opts.apiKey
  const inventUnknown = opts.inventUnknownTasks ?? false
  const startHandler = opts.handler
  const recordRequests = opts.recordRequests ?? true

  const tasks = new Map<string, TaskRecord>()
  const stats: SimulatedUpstreamStats = { requests: 0, byRoute: {} }
  const timers = new Set<NodeJS.Timeout>()
  const sockets = new Set<Socket>()
  let lastRequest: RecordedRequest | undefined
  let handler = startHandler
  let queue: Behavior[] = []
  let requests: RecordedRequest[] = []
  let calls = 0
  let closing: Promise<void> | undefined
  /** while holding: the answers waiting for release() */
  let held: Array<() => void> | undefined
  let sequence = 0

  const randInt = (below: number): number => Math.min(below - 1, Math.floor(random() * below))
  const hex = (n: number): string => {
    let s = ''
    for (let i = 0; i < n; i++) s += randInt(16).toString(16)
    return s
  }
  const digits = (n: number): string => {
    let s = String(1 + randInt(9))
    for (let i = 1; i < n; i++) s += String(randInt(10))
    return s
  }
  const uuid = (): string => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[randInt(4)] as string}${hex(3)}-${hex(12)}`

  /** like midjourney-proxy: submit milliseconds followed by a few random digits, unique */
  const newId = (submitTime: number): string => {
    let id = BigInt(`${submitTime}${String(randInt(1000)).padStart(3, '0')}`)
    while (tasks.has(id.toString())) id += 1n
    return id.toString()
  }

  // serveImages: set once listening, before any task exists
  let imageOrigin = CDN
  const signedUrl = (path: string, issuedMs: number, ttl = ttlSeconds): string => {
    const is = Math.floor(issuedMs / 1000)
    const ex = (is + ttl).toString(16)
    const isHex = is.toString(16)
    const hm = createHmac('sha256', 'simulated-cdn').update(`${path}|${ex}|${isHex}`).digest('hex')
    return `${imageOrigin}/${path}?ex=${ex}&is=${isHex}&hm=${hm}&`
  }

  const padPrompt = (prompt: string, bodyPadBytes: number): string => {
    if (bodyPadBytes <= 0) return prompt
    // the prompt appears three times in a body (prompt, promptEn, properties.finalPrompt)
    const per = Math.ceil(bodyPadBytes / 3)
    const pad = PAD_WORDS.repeat(Math.ceil(per / PAD_WORDS.length)).slice(0, per)
    return prompt + pad
  }

  const addTask = (p: {
    action: string
    prompt: string
    customId?: string
    outcome?: Outcome
    bodyPadBytes?: number
    submitTime?: number
    /** the image link lives this long after the task finished; default imageUrlTtlSeconds */
    imageLinkTtlSeconds?: number
  }): TaskRecord => {
    const now = clock()
    const submitTime = p.submitTime ?? now
    const outcome: Outcome = p.outcome ?? (random() < failureRatio ? 'FAILURE' : 'SUCCESS')
    const runMs = Math.round(stepMs * (0.7 + 1.3 * random()))
    const progressTime = submitTime + 2 * stepMs
    const finishTime = outcome === 'never' ? Infinity : progressTime + runMs
    const id = newId(submitTime)
    const hash = uuid()
    const slug = (p.prompt.split(/[^A-Za-z0-9]+/).find((w) => w !== '') ?? 'image').toLowerCase().slice(0, 32)
    const base = `${CDN_CHANNEL}/${digits(19)}/simuser_${++sequence}_${slug}_${hash}`
    const success = outcome === 'SUCCESS'
    const task: TaskRecord = {
      id,
      action: p.action,
      customId: p.customId ?? '',
      prompt: padPrompt(p.prompt, p.bodyPadBytes ?? 0),
      submitTime,
      startTime: submitTime + stepMs,
      progressTime,
      finishTime,
      outcome,
      imageUrl: success ? signedUrl(`${base}.png`, finishTime, p.imageLinkTtlSeconds) : '',
      previewUrl: signedUrl(`${base}_grid_0.webp`, progressTime),
      failReason: outcome === 'FAILURE' ? (FAIL_REASONS[randInt(FAIL_REASONS.length)] as string) : '',
      buttons: !success ? [] : p.action === 'UPSCALE' ? upscaleButtons(hash) : GRID_ACTIONS.has(p.action) ? gridButtons(hash) : [],
      seed: digits(9 + randInt(2))
    }
    tasks.set(id, task)
    return task
  }

  const statusAt = (t: TaskRecord, now: number): string => {
    if (now >= t.finishTime) return t.outcome
    if (now >= t.progressTime) return 'IN_PROGRESS'
    if (now >= t.startTime) return 'SUBMITTED'
    return 'NOT_START'
  }

  const render = (t: TaskRecord, now: number): Record<string, unknown> => {
    const status = statusAt(t, now)
    let progress = '0%'
    let imageUrl = ''
    let finishTime = 0
    if (status === 'SUCCESS') {
      progress = '100%'
      imageUrl = t.imageUrl
      finishTime = t.finishTime
    } else if (status === 'FAILURE') {
      progress = ''
      finishTime = t.finishTime
    } else if (status === 'IN_PROGRESS') {
      const span = t.outcome === 'never' ? 2 * stepMs : t.finishTime - t.progressTime
      const pct = Math.min(99, Math.floor(((now - t.progressTime) / Math.max(1, span)) * 100))
      progress = `${pct}%`
      if (pct > 0) imageUrl = t.previewUrl
    }
    return {
      id: t.id,
      action: t.action,
      customId: t.customId,
      botType: '',
      prompt: t.prompt,
      promptEn: t.prompt,
      description: 'Submit success',
      state: '',
      submitTime: t.submitTime,
      startTime: status === 'NOT_START' ? 0 : t.startTime,
      finishTime,
      imageUrl,
      status,
      progress,
      failReason: status === 'FAILURE' ? t.failReason : '',
      buttons: status === 'SUCCESS' ? t.buttons : [],
      maskBase64: '',
      properties: { finalPrompt: t.prompt, finalZhPrompt: '' }
    }
  }

  /** a task's body as JSON; terminal bodies never change, so they are serialized once */
  const taskJson = (t: TaskRecord, now: number): string => {
    if (t.terminalJson !== undefined) return t.terminalJson
    const json = JSON.stringify(render(t, now))
    if (now >= t.finishTime) t.terminalJson = json
    return json
  }

  const submitted = (t: TaskRecord): Record<string, unknown> => ({
    code: 1,
    description: 'Submit success',
    properties: {},
    result: t.id
  })

  const authorized = (headers: IncomingHttpHeaders): boolean => {
    if (apiKey === undefined) return true
    if (authStyle === 'mj-api-secret') return headers['mj-api-secret'] === apiKey
    const m = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '')
    return m?.[1] === apiKey
  }

  /** a POST body as the upstream reads it: empty is {}, anything but a JSON object is a 400 */
  const jsonBody = (rec: RecordedRequest, tooLarge: boolean): Record<string, unknown> => {
    if (tooLarge) throw new BadRequest(413, failBody(4, 'request body too large'))
    const text = rec.body.toString('utf8')
    if (text.trim() === '') return {}
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new BadRequest(400, failBody(4, 'invalid JSON body'))
    }
    if (!isObject(parsed)) throw new BadRequest(400, failBody(4, 'body must be a JSON object'))
    return parsed
  }

  const submit = (kind: string, body: Record<string, unknown>): [number, unknown] => {
    const prompt = typeof body.prompt === 'string' ? body.prompt : ''
    if (kind === 'imagine') {
      if (!nonEmptyString(body.prompt)) return [400, failBody(4, 'prompt is required')]
      return [200, submitted(addTask({ action: 'IMAGINE', prompt }))]
    }
    if (kind === 'action') {
      const { taskId, customId } = body
      if (!nonEmptyString(taskId) || !nonEmptyString(customId)) return [400, failBody(4, 'taskId and customId are required')]
      const parent = tasks.get(taskId)
      if (!parent) return [200, failBody(3, 'task not found')]
      if (statusAt(parent, clock()) !== 'SUCCESS') return [200, failBody(4, 'task status is not SUCCESS')]
      const action = CUSTOM_ID_ACTIONS.find(([re]) => re.test(customId))?.[1]
      if (action === undefined) return [400, failBody(4, 'customId is invalid')]
      return [200, submitted(addTask({ action, prompt: parent.prompt, customId }))]
    }
    let action = SUBMIT_ACTIONS[kind] as string
    if (kind === 'change' && typeof body.action === 'string' && CHANGE_ACTIONS.has(body.action)) action = body.action
    if (kind === 'simple-change' && typeof body.content === 'string') {
      const letter = /\s([UVR])\d?\s*$/i.exec(body.content)?.[1]
      if (letter !== undefined) action = SIMPLE_CHANGE_ACTIONS[letter.toUpperCase()] as string
    }
    return [200, submitted(addTask({ action, prompt }))]
  }

  /** the simulation's answer: status and payload */
  const simulate = (rec: RecordedRequest, tooLarge: boolean): [number, unknown] => {
    if (!authorized(rec.headers)) return [401, { code: 401, description: 'invalid api key' }]
    const now = clock()
    const { path, route } = rec
    switch (route) {
      case 'GET /mj/task/:id/fetch': {
        const id = decodeSegment(path)
        const task = tasks.get(id)
        if (task === undefined) return [200, inventUnknown ? taskBody(id, 'SUCCESS') : null]
        return [200, new RawJson(taskJson(task, now))]
      }
      case 'GET /mj/task/:id/image-seed': {
        const task = tasks.get(decodeSegment(path))
        if (task && statusAt(task, now) === 'SUCCESS') return [200, { code: 1, description: 'success', result: task.seed }]
        return [200, failBody(4, 'not found')]
      }
      case 'GET /mj/task/list':
        return [200, new RawJson(`[${[...tasks.values()].map((t) => taskJson(t, now)).join(',')}]`)]
      case 'POST /mj/task/list-by-condition': {
        const body = jsonBody(rec, tooLarge)
        const wanted = new Set(Array.isArray(body.ids) ? body.ids.filter((x): x is string => typeof x === 'string') : [])
        const found = [...tasks.values()].filter((t) => wanted.has(t.id))
        return [200, new RawJson(`[${found.map((t) => taskJson(t, now)).join(',')}]`)]
      }
      case 'other':
        return [404, { timestamp: new Date(now).toISOString(), status: 404, error: 'Not Found', path }]
      default:
        // every remaining route is POST /mj/submit/<kind>
        return submit(route.slice('POST /mj/submit/'.length), jsonBody(rec, tooLarge))
    }
  }

  /** a timer that close() clears; `fn` is skipped when the response is already gone */
  const later = (ms: number, res: ServerResponse, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (!res.destroyed && closing === undefined) fn()
    }, Math.max(0, ms))
    timers.add(timer)
  }

  /** writes a complete answer, after delayMs when given */
  const answer = (res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer, delayMs: number): void => {
    const write = (): void => {
      res.writeHead(status, { 'content-length': body.length, ...headers })
      res.end(body)
    }
    if (delayMs > 0) later(delayMs, res, write)
    else write()
  }

  const sendSimulated = (res: ServerResponse, rec: RecordedRequest, tooLarge: boolean): void => {
    let status: number
    let payload: unknown
    try {
      ;[status, payload] = simulate(rec, tooLarge)
    } catch (err) {
      // BadRequest is the only error the simulation throws
      ;[status, payload] = [(err as BadRequest).status, (err as BadRequest).body]
    }
    const body = Buffer.from(payload instanceof RawJson ? payload.json : JSON.stringify(payload), 'utf8')
    const delay = jitterMs > 0 ? Math.max(0, latencyMs + (random() * 2 - 1) * jitterMs) : latencyMs
    answer(res, status, { 'content-type': JSON_TYPE }, body, delay)
  }

  const serve = (rec: RecordedRequest, tooLarge: boolean, b: Behavior, req: IncomingMessage, res: ServerResponse): void => {
    switch (b.kind) {
      case 'simulate':
        return sendSimulated(res, rec, tooLarge)
      case 'json':
      case 'raw': {
        let body: Buffer
        if (b.kind === 'json') {
          const text = JSON.stringify(b.body) as string | undefined
          body = Buffer.from(text ?? '', 'utf8')
        } else {
          body = typeof b.body === 'string' ? Buffer.from(b.body, 'utf8') : b.body
        }
        const headers = withHeaders({ 'content-type': JSON_TYPE, 'content-length': body.length }, b.headers)
        return answer(res, b.status ?? 200, headers, body, b.delayMs ?? 0)
      }
      case 'echo': {
        const echo = { method: rec.method, url: rec.url, headers: rec.headers, body: rec.body.toString('utf8') }
        return answer(res, b.status ?? 200, { 'content-type': JSON_TYPE }, Buffer.from(JSON.stringify(echo), 'utf8'), b.delayMs ?? 0)
      }
      case 'hang':
        return
      case 'reset':
        req.socket.resetAndDestroy()
        return
      case 'reset-mid-body': {
        const partial = Buffer.from(
          b.partial ?? `{"id":${JSON.stringify(idFromUrl(rec.url) ?? 'x')},"action":"IMAGINE","status":"SUCC`,
          'utf8'
        )
        res.writeHead(b.status ?? 200, { 'content-type': JSON_TYPE, 'content-length': partial.length + 4096 })
        res.write(partial, () => {
          // the bytes are with the kernel; close (FIN, not RST, so the client surely reads them first)
          later(25, res, () => req.socket.destroy())
        })
        return
      }
      case 'huge': {
        const id = idFromUrl(rec.url) ?? 'huge'
        const bare = JSON.stringify({ ...taskBody(id, 'SUCCESS'), padding: '' })
        // bare ends with `"padding":""}`: split it before the closing `"}`
        const head = Buffer.from(bare.slice(0, -2), 'utf8')
        const tail = Buffer.from('"}', 'utf8')
        let remaining = Math.max(0, Math.floor(b.bytes) - head.length - tail.length)
        const total = head.length + remaining + tail.length
        const headers: OutgoingHttpHeaders = { 'content-type': JSON_TYPE }
        if (!b.chunked) headers['content-length'] = total
        res.writeHead(b.status ?? 200, headers)
        res.write(head)
        const block = Buffer.alloc(64 * 1024, 'x')
        const pump = (): void => {
          while (remaining > 0) {
            const n = Math.min(remaining, block.length)
            remaining -= n
            if (!res.write(n === block.length ? block : block.subarray(0, n))) {
              res.once('drain', pump)
              return
            }
          }
          if (!res.destroyed) res.end(tail)
        }
        pump()
        return
      }
      case 'slow-body': {
        const body = Buffer.from(b.body, 'utf8')
        const step = Math.max(1, Math.floor(b.chunkBytes ?? 1))
        res.writeHead(b.status ?? 200, { 'content-type': JSON_TYPE, 'content-length': body.length })
        let offset = 0
        const drip = (): void => {
          const piece = body.subarray(offset, offset + step)
          offset += piece.length
          if (offset >= body.length) {
            res.end(piece)
            return
          }
          res.write(piece)
          later(b.chunkDelayMs, res, drip)
        }
        if (body.length === 0) res.end()
        else drip()
        return
      }
    }
  }

  const server = createServer((req, res) => {
    req.on('error', () => {})
    res.on('error', () => {})
    // a server-side request always has both
    const method = req.method as string
    const url = req.url as string
    const path = url.split('?')[0] as string
    if (opts.serveImages === true && method === 'GET' && path.startsWith('/attachments/')) return serveImage(url, res)
    const route = routeKey(method, path)
    // counted on arrival (a call made is a call, even if its body never arrives); recorded once complete
    const callIndex = calls++
    stats.requests++
    stats.byRoute[route] = (stats.byRoute[route] ?? 0) + 1
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      // past the cap, keep draining (so the client can read the answer) but keep nothing
      if (size <= maxBodyBytes) chunks.push(chunk)
    })
    // close() destroys every socket, so no request completes once closing has begun
    req.on('end', () => {
      const rec: RecordedRequest = { method, url, path, route, headers: req.headers, body: Buffer.concat(chunks) }
      lastRequest = rec
      if (recordRequests) requests.push(rec)
      const go = (): void => {
        let b: Behavior | undefined
        try {
          b = queue.shift() ?? handler?.(rec, callIndex)
        } catch (err) {
          // a throwing handler fails its test with a readable answer instead of a hang
          const message = err instanceof Error ? err.message : String(err)
          b = { kind: 'json', status: 500, body: { error: 'simulated upstream handler threw', message } }
        }
        serve(rec, size > maxBodyBytes, b ?? SIMULATE, req, res)
      }
      if (held === undefined) go()
      else held.push(go)
    })
  })
  // never let the server's own timers end a hanging request; only close() does
  server.requestTimeout = 0
  server.headersTimeout = 0
  server.keepAliveTimeout = 60_000
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const urlHost = host.includes(':') ? `[${host}]` : host
  if (opts.serveImages === true) imageOrigin = `http://${urlHost}:${port}/attachments`

  /** the simulated CDN: a PNG while the link's ex= lies ahead, then 404 as Discord answers an expired link */
  function serveImage(url: string, res: ServerResponse): void {
    const parsed = new URL(url, 'http://sim.invalid')
    const ex = parseInt(parsed.searchParams.get('ex') ?? '0', 16)
    if (!(ex * 1000 > clock())) {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('This content is no longer available.')
      return
    }
    const seed = [...parsed.pathname].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 1_000_003, 7)
    const png = pngBytes(96, 96, seed)
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length })
    res.end(png)
  }

  return {
    url: `http://${urlHost}:${port}`,
    port,
    stats,
    get lastRequest() {
      return lastRequest
    },
    get calls() {
      return calls
    },
    get requests() {
      return requests
    },
    callsTo(pathPrefix) {
      return requests.filter((r) => r.url.startsWith(pathPrefix)).length
    },
    setHandler(h) {
      handler = h
    },
    enqueue(...b) {
      queue.push(...b)
    },
    reset() {
      calls = 0
      requests = []
      queue = []
      handler = startHandler
      stats.requests = 0
      stats.byRoute = {}
    },
    hold() {
      held ??= []
    },
    release() {
      const waiting = held ?? []
      held = undefined
      for (const go of waiting) go()
    },
    requireKey(key, style) {
      apiKey = key
      authStyle = style ?? 'bearer'
    },
    createTask(o = {}) {
      return addTask({ action: 'IMAGINE', prompt: o.prompt ?? 'a lighthouse on a cliff at dusk --v 6.1', outcome: o.outcome, bodyPadBytes: o.bodyPadBytes }).id
    },
    finishedTask(o = {}) {
      // submitted a few minutes ago, so every stage lies in the past
      const submitTime = clock() - 120_000 - 8 * stepMs
      const outcome = o.outcome ?? 'SUCCESS'
      return addTask({ action: 'IMAGINE', prompt: 'pig --v 6.1', outcome, bodyPadBytes: o.bodyPadBytes, submitTime, imageLinkTtlSeconds: o.imageLinkTtlSeconds }).id
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer)
        timers.clear()
        server.close(() => resolve())
        server.closeAllConnections()
        for (const socket of sockets) socket.destroy()
        sockets.clear()
      })
      return closing
    }
  }
}

const SIMULATE: Behavior = { kind: 'simulate' }

function withHeaders(base: OutgoingHttpHeaders, extra: Record<string, string> | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...base }
  for (const [k, v] of Object.entries(extra ?? {})) out[k.toLowerCase()] = v
  return out
}

/** the `:id` segment of /mj/task/:id/... ; an undecodable id is simply unknown */
function decodeSegment(path: string): string {
  const raw = path.split('/')[3] as string
  try {
    return decodeURIComponent(raw)
  } catch {
    return raw
  }
}

// ---------------------------------------------------------------------------------------------
// Fixed task bodies for tests that script answers by hand

/** lowercase hex of a Unix time in seconds, at least 8 digits (Discord's `ex=` / `is=` format) */
function hexSeconds(unixSeconds: number): string {
  return Math.max(0, Math.floor(unixSeconds)).toString(16).padStart(8, '0')
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

/** a stable uuid-shaped job hash derived from a task id (as Midjourney's button customIds carry) */
function jobHash(id: string): string {
  const h = sha256Hex(`job:${id}`)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`
}

function discordImageUrl(hash: string, unixSeconds: number): string {
  const ex = hexSeconds(unixSeconds)
  const is = hexSeconds(unixSeconds - 86_400)
  const hm = sha256Hex(`${hash}:${ex}`)
  return (
    'https://cdn.discordapp.com/attachments/1300842274347028520/1302547211321741343/' +
    `fake_user_pig_${hash}.png?ex=${ex}&is=${is}&hm=${hm}&`
  )
}

/** a Discord-style signed CDN URL whose `ex=` parameter is `unixSeconds` in hex */
export function imageUrlExpiringAt(unixSeconds: number): string {
  return discordImageUrl(jobHash(String(unixSeconds)), unixSeconds)
}

const TERMINAL = new Set(['SUCCESS', 'FAILURE', 'CANCEL'])

/**
 * A task object shaped like the upstream's example. Deterministic for a given (id, status) except
 * that a SUCCESS imageUrl expires (ex=) 24 h after the current second. Terminal statuses carry
 * progress '100%' (SUCCESS) or '0%' and a finishTime; FAILURE has a failReason and an empty
 * imageUrl; non-terminal statuses have progress '42%', finishTime 0 and an empty imageUrl.
 * `overrides` are shallow-merged last.
 */
export function taskBody(id: string, status: string, overrides?: Record<string, unknown>): Record<string, unknown> {
  const hash = jobHash(id)
  const terminal = TERMINAL.has(status)
  const prompt = 'pig --v 6.1'
  const submitTime = 1_730_621_826_053
  return {
    id,
    action: 'IMAGINE',
    customId: '',
    botType: '',
    prompt,
    promptEn: prompt,
    description: 'Submit success',
    state: '',
    submitTime,
    startTime: status === 'NOT_START' || status === 'SUBMITTED' || status === '' ? 0 : submitTime + 1_971,
    finishTime: terminal ? submitTime + 29_764 : 0,
    imageUrl: status === 'SUCCESS' ? discordImageUrl(hash, Math.floor(Date.now() / 1000) + 86_400) : '',
    status,
    progress: status === 'SUCCESS' ? '100%' : terminal ? '0%' : '42%',
    failReason: status === 'FAILURE' ? 'Banned prompt detected' : '',
    buttons: status === 'SUCCESS' ? gridButtons(hash) : [],
    maskBase64: '',
    properties: { finalPrompt: prompt, finalZhPrompt: '' },
    ...overrides
  }
}

/** the (URI-decoded) id of a `/mj/task/:id/fetch` path or URL (query ignored), else undefined */
export function idFromUrl(url: string): string | undefined {
  let path: string
  try {
    path = new URL(url, 'http://fake.invalid').pathname
  } catch {
    return undefined
  }
  const m = /^\/mj\/task\/([^/]+)\/fetch$/.exec(path)
  if (!m?.[1]) return undefined
  try {
    return decodeURIComponent(m[1])
  } catch {
    return m[1]
  }
}
