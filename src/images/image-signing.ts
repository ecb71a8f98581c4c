import { createHmac, timingSafeEqual } from 'node:crypto'

/** Which image of a task: its `imageUrl` (undefined) or `imageUrls[n]`. */
export type ImageSlot = number | undefined

/** The gateway path of a task's image: /mj/image/:id or /mj/image/:id/:n. */
export function imagePath(id: string, n: ImageSlot): string {
  return n === undefined ? `/mj/image/${id}` : `/mj/image/${id}/${n}`
}

/**
 * Signed image URLs for `<img>` tags, which cannot send a token: `?exp={unix seconds}&sig={HMAC-SHA256}` over the
 * path and the expiry, so a signature is good for one image of one task until it expires, and for nothing else.
 */
export class ImageSigner {
  /** expiries are rounded up to this step, so a task body rewritten twice within it has the same bytes (and etag) */
  private readonly stepSeconds: number

  constructor(
    private readonly key: string,
    private readonly ttlSeconds: number
  ) {
    this.stepSeconds = Math.min(3600, ttlSeconds)
  }

  /** the expiry a URL signed now carries: at least ttlSeconds away */
  expiryFor(nowMs: number): number {
    const earliest = Math.ceil(nowMs / 1000) + this.ttlSeconds
    return Math.ceil(earliest / this.stepSeconds) * this.stepSeconds
  }

  /** `exp=…&sig=…` for the image's path */
  query(id: string, n: ImageSlot, exp: number): string {
    return `exp=${exp}&sig=${this.mac(imagePath(id, n), exp)}`
  }

  /** true when sig is this gateway's signature of the image's path with exp, and exp has not passed */
  verify(id: string, n: ImageSlot, exp: string | undefined, sig: string | undefined, nowMs: number): boolean {
    if (exp === undefined || sig === undefined || !/^\d{1,12}$/.test(exp)) return false
    const expSeconds = Number(exp)
    if (expSeconds * 1000 <= nowMs) return false
    const want = Buffer.from(this.mac(imagePath(id, n), expSeconds))
    const got = Buffer.from(sig)
    return got.length === want.length && timingSafeEqual(got, want)
  }

  private mac(path: string, exp: number): string {
    return createHmac('sha256', this.key).update(`${path}\n${exp}`).digest('base64url')
  }
}
