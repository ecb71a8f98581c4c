/**
 * A realistic fake of the Midjourney task API (midjourney-proxy as relayed by QuickRouter),
 * on node:http only. Used by `npm run demo`, by tests and by the benchmark.
 *
 * Tasks move through NOT_START → SUBMITTED → IN_PROGRESS ("0%".."99%") → SUCCESS | FAILURE
 * by the time elapsed since submission, one `stepMs` per stage. Bodies are shaped exactly like
 * the upstream's documented example (QuickRouter fills unset numbers with 0 and strings with "").
 */
import { createHmac } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
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

export interface SimulatedRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
}

export interface SimulatedUpstream {
  /** http://host:port (origin, no trailing slash) */
  readonly url: string
  readonly port: number
  readonly stats: SimulatedUpstreamStats
  /** the most recent request as received (headers included), to prove what a gateway forwards */
  readonly lastRequest: SimulatedRequest | undefined
  /** creates an IMAGINE task submitted now; returns its id. `never` stays IN_PROGRESS forever */
  createTask(opts?: { prompt?: string; outcome?: 'SUCCESS' | 'FAILURE' | 'never'; bodyPadBytes?: number }): string
  /** creates an IMAGINE task that is already terminal; returns its id */
  finishedTask(opts?: { outcome?: 'SUCCESS' | 'FAILURE'; bodyPadBytes?: number; imageLinkTtlSeconds?: number }): string
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
  const authStyle = opts.authStyle ?? 'bearer'
  const apiKey = opts.apiKey

  const tasks = new Map<string, TaskRecord>()
  const stats: SimulatedUpstreamStats = { requests: 0, byRoute: {} }
  const timers = new Set<NodeJS.Timeout>()
  let lastRequest: SimulatedRequest | undefined
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

  const authorized = (req: IncomingMessage): boolean => {
    if (apiKey === undefined) return true
    if (authStyle === 'mj-api-secret') return req.headers['mj-api-secret'] === apiKey
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')
    return m?.[1] === apiKey
  }

  const readBody = (req: IncomingMessage): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      req.on('data', (chunk: Buffer) => {
        size += chunk.length
        // past the cap, keep draining (so the client can read the answer) but keep nothing
        if (size <= maxBodyBytes) chunks.push(chunk)
      })
      req.on('error', reject)
      req.on('end', () => {
        if (size > maxBodyBytes) return reject(new BadRequest(413, failBody(4, 'request body too large')))
        const text = Buffer.concat(chunks).toString('utf8')
        if (text.trim() === '') return resolve({})
        let parsed: unknown
        try {
          parsed = JSON.parse(text)
        } catch {
          return reject(new BadRequest(400, failBody(4, 'invalid JSON body')))
        }
        if (!isObject(parsed)) return reject(new BadRequest(400, failBody(4, 'body must be a JSON object')))
        resolve(parsed)
      })
    })

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

  const handle = async (req: IncomingMessage, path: string, route: string): Promise<[number, unknown]> => {
    if (!authorized(req)) return [401, { code: 401, description: 'invalid api key' }]
    const now = clock()
    switch (route) {
      case 'GET /mj/task/:id/fetch': {
        const task = tasks.get(decodeSegment(path))
        return [200, task ? new RawJson(taskJson(task, now)) : null]
      }
      case 'GET /mj/task/:id/image-seed': {
        const task = tasks.get(decodeSegment(path))
        if (task && statusAt(task, now) === 'SUCCESS') return [200, { code: 1, description: 'success', result: task.seed }]
        return [200, failBody(4, 'not found')]
      }
      case 'GET /mj/task/list':
        return [200, new RawJson(`[${[...tasks.values()].map((t) => taskJson(t, now)).join(',')}]`)]
      case 'POST /mj/task/list-by-condition': {
        const body = await readBody(req)
        const wanted = new Set(Array.isArray(body.ids) ? body.ids.filter((x): x is string => typeof x === 'string') : [])
        const found = [...tasks.values()].filter((t) => wanted.has(t.id))
        return [200, new RawJson(`[${found.map((t) => taskJson(t, now)).join(',')}]`)]
      }
      case 'other':
        return [404, { timestamp: new Date(now).toISOString(), status: 404, error: 'Not Found', path }]
      default:
        // every remaining route is POST /mj/submit/<kind>
        return submit(route.slice('POST /mj/submit/'.length), await readBody(req))
    }
  }

  const send = (res: ServerResponse, status: number, payload: unknown): void => {
    const body = payload instanceof RawJson ? payload.json : JSON.stringify(payload)
    const write = (): void => {
      if (res.destroyed) return
      res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
    const delay = jitterMs > 0 ? Math.max(0, latencyMs + (random() * 2 - 1) * jitterMs) : latencyMs
    if (delay <= 0) return write()
    const timer = setTimeout(() => {
      timers.delete(timer)
      write()
    }, delay)
    timers.add(timer)
  }

  const server = createServer((req, res) => {
    // a server-side request always has both
    const method = req.method as string
    const path = (req.url as string).split('?')[0] as string
    if (opts.serveImages === true && method === 'GET' && path.startsWith('/attachments/')) return serveImage(req.url as string, res)
    const route = routeKey(method, path)
    stats.requests++
    stats.byRoute[route] = (stats.byRoute[route] ?? 0) + 1
    lastRequest = { method, path, headers: { ...req.headers } }
    handle(req, path, route).then(
      ([status, payload]) => send(res, status, payload),
      (err: unknown) => {
        if (err instanceof BadRequest) send(res, err.status, err.body)
        else send(res, 500, failBody(9, 'internal error'))
      }
    )
  })
  server.keepAliveTimeout = 60_000
  server.headersTimeout = 65_000

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
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }
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
