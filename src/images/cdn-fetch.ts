import { pipeline, Transform, type Readable } from 'node:stream'
import { Agent, request } from 'undici'
import { imageUrlExpiry } from '../cache/policy.js'

/** Why an image could not be archived: the archive outcomes besides `ok`. */
export type ImageFailure = 'not_allowed' | 'too_large' | 'not_image' | 'gone' | 'error' | 'timeout' | 'store_error'

export const IMAGE_FAILURES: readonly ImageFailure[] = ['not_allowed', 'too_large', 'not_image', 'gone', 'error', 'timeout', 'store_error']

/** Failures that no retry can mend: the link, the host or the bytes are wrong. */
export const PERMANENT: ReadonlySet<ImageFailure> = new Set(['not_allowed', 'too_large', 'not_image', 'gone'])

export class ImageFetchError extends Error {
  override name = 'ImageFetchError'
  constructor(
    readonly reason: ImageFailure,
    message: string
  ) {
    super(message)
  }
}

export interface CdnFetchOptions {
  /** IMAGE_HOSTS, lower case */
  hosts: readonly string[]
  /** IMAGE_MAX_BYTES */
  maxBytes: number
  /** wait this long for headers, and at most this long between two pieces of the body */
  idleTimeoutMs: number
}

const MAX_REDIRECTS = 5
/** a whole download never takes longer than this many idle timeouts, however slowly the bytes drip */
const BUDGET_FACTOR = 6

export interface FetchedImage {
  /** the bytes, cut off with an ImageFetchError('too_large') past IMAGE_MAX_BYTES */
  body: Readable
  contentType: string
}

/** What an error on the way from the CDN (ours, undici's or the store's) means for the archive. */
export function failureOf(err: unknown): ImageFailure {
  if (err instanceof ImageFetchError) return err.reason
  const code = (err as { code?: unknown } | null)?.code
  const name = (err as { name?: unknown } | null)?.name
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || name === 'TimeoutError') {
    return 'timeout'
  }
  if (typeof code === 'string' && code.startsWith('UND_ERR')) return 'error'
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return 'store_error'
  if (typeof code === 'string' && ['ENOSPC', 'EACCES', 'EROFS', 'ENOTDIR', 'EISDIR', 'EDQUOT', 'EPERM', 'EIO', 'EMFILE', 'ENFILE'].includes(code)) {
    return 'store_error'
  }
  return 'error'
}

/**
 * Downloads images from the CDN hosts the operator lists, and from nowhere else: not the first URL, not a redirect.
 * A listed host is trusted wherever it resolves (the operator named it); an unlisted one is never even asked.
 */
export class CdnFetcher {
  private readonly hosts: ReadonlySet<string>
  private readonly agent: Agent

  constructor(private readonly opts: CdnFetchOptions) {
    this.hosts = new Set(opts.hosts)
    this.agent = new Agent({
      headersTimeout: opts.idleTimeoutMs,
      bodyTimeout: opts.idleTimeoutMs,
      connect: { timeout: opts.idleTimeoutMs },
      connections: 16
    })
  }

  /** true when the link is still good by its own `ex=` (a link without one is assumed good) */
  static alive(url: string, nowMs: number): boolean {
    const ex = imageUrlExpiry(url)
    return ex === undefined || ex * 1000 > nowMs
  }

  allowed(raw: string): URL | undefined {
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      return undefined
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined
    return this.hosts.has(url.hostname.toLowerCase()) ? url : undefined
  }

  async fetch(link: string, nowMs: number): Promise<FetchedImage> {
    let url = this.allowed(link)
    if (url === undefined) throw new ImageFetchError('not_allowed', 'image host not in IMAGE_HOSTS')
    if (!CdnFetcher.alive(link, nowMs)) throw new ImageFetchError('gone', 'image link expired')
    const signal = AbortSignal.timeout(this.opts.idleTimeoutMs * BUDGET_FACTOR)
    for (let hop = 0; ; hop++) {
      const res = await request(url, { dispatcher: this.agent, method: 'GET', headers: { accept: 'image/*' }, signal })
      const { statusCode: status } = res
      if (status >= 300 && status < 400 && typeof res.headers.location === 'string') {
        await res.body.dump()
        if (hop >= MAX_REDIRECTS) throw new ImageFetchError('error', 'too many redirects')
        let next: URL | undefined
        try {
          next = this.allowed(new URL(res.headers.location, url).href)
        } catch {
          next = undefined
        }
        if (next === undefined) throw new ImageFetchError('not_allowed', 'image redirected to a host not in IMAGE_HOSTS')
        url = next
        continue
      }
      if (status !== 200) {
        await res.body.dump()
        // the CDN no longer has it (Discord answers 404 once a link expired); 408 and 429 are worth another try
        if (status >= 400 && status < 500 && status !== 408 && status !== 429) throw new ImageFetchError('gone', `image link answered HTTP ${status}`)
        throw new ImageFetchError('error', `image link answered HTTP ${status}`)
      }
      const type = String(res.headers['content-type'] ?? '').trim()
      if (!/^image\/[a-z0-9.+-]+/i.test(type)) {
        await res.body.dump()
        throw new ImageFetchError('not_image', 'image link answered something that is not an image')
      }
      const declared = Number(res.headers['content-length'])
      if (Number.isFinite(declared) && declared > this.opts.maxBytes) {
        res.body.on('error', () => undefined).destroy()
        throw new ImageFetchError('too_large', `image larger than IMAGE_MAX_BYTES (${this.opts.maxBytes})`)
      }
      // pipeline: an error on either side (a cut-off body, a timeout, too many bytes) ends both, and reaches the reader
      const body = limit(this.opts.maxBytes)
      pipeline(res.body, body, () => undefined)
      return { body, contentType: type }
    }
  }

  async close(): Promise<void> {
    await this.agent.close()
  }
}

/** passes at most max bytes, and fails (too_large) beyond */
function limit(max: number): Transform {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length
      if (seen > max) cb(new ImageFetchError('too_large', `image larger than IMAGE_MAX_BYTES (${max})`))
      else cb(null, chunk)
    }
  })
}
