import { LRUCache } from 'lru-cache'
import { etagOf } from '../cache/task-cache.js'
import { imagePath, type ImageSigner, type ImageSlot } from './image-signing.js'
import { archivable, linkAt, taskImages, taskImagesOf, type TaskImages } from './task-images.js'

/** A task body as a client gets it: bytes and the etag of those bytes. */
export interface Presented {
  readonly body: Buffer
  readonly etag: string
}

/** the rewritten forms of recently served bodies, by the upstream body's etag */
const MEMO_BYTES = 16 << 20

/**
 * IMAGE_REWRITE=on: a SUCCESS task's `imageUrl` and `imageUrls[n]` become signed gateway URLs under PUBLIC_URL, so a
 * frontend that shows `imageUrl` shows the archived copy. The fetch route, the hit lane and list-by-condition all
 * call present(): one rewrite, the same bytes everywhere. The signature's expiry moves in steps (ImageSigner), so a
 * body's rewritten bytes, and its etag, stay the same within a step, and the result is memoised per step.
 */
export class TaskRewriter {
  private readonly memo = new LRUCache<string, Presented & { exp: number }>({
    maxSize: MEMO_BYTES,
    sizeCalculation: (p) => p.body.length + 64
  })

  constructor(
    private readonly signer: ImageSigner,
    private readonly publicUrl: string
  ) {}

  present(body: Buffer, etag: string, nowMs: number): Presented {
    const exp = this.signer.expiryFor(nowMs)
    const known = this.memo.get(etag)
    if (known !== undefined && known.exp === exp) return known
    const rewritten = this.rewrite(body, exp)
    const presented = rewritten === undefined ? { body, etag, exp } : { body: rewritten, etag: etagOf(rewritten), exp }
    this.memo.set(etag, presented)
    return presented
  }

  /** the body with its image links replaced; undefined when nothing is to replace (the bytes stay as they are) */
  private rewrite(body: Buffer, exp: number): Buffer | undefined {
    const text = body.toString('utf8')
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return undefined
    }
    const images = taskImagesOf(parsed)
    if (images === undefined) return undefined
    const links = archivable(images)
    if (links.length === 0) return undefined
    const signed = (n: ImageSlot): string => `${this.publicUrl}${imagePath(images.id, n)}?${this.signer.query(images.id, n, exp)}`
    // Replace the links where they stand, so every other byte (numbers' digits, key order, spacing) stays as sent.
    let out = text
    let inPlace = true
    const done = new Set<string>()
    for (const { n, url } of links) {
      // the same link twice (imageUrl repeated in imageUrls): the first slot's signed URL serves the same bytes
      if (done.has(url)) continue
      done.add(url)
      const token = JSON.stringify(url)
      if (!out.includes(token)) {
        inPlace = false
        break
      }
      out = out.split(token).join(JSON.stringify(signed(n)))
    }
    if (inPlace && this.allReplaced(out, links)) return Buffer.from(out)
    // escaped differently than JSON.stringify would (`\/`, `\u0026`): rebuild the object instead
    const task = parsed as Record<string, unknown>
    if (images.imageUrl !== '') task['imageUrl'] = signed(undefined)
    const list = task['imageUrls']
    if (Array.isArray(list)) {
      task['imageUrls'] = list.map((el: unknown, n) => {
        if (images.imageUrls[n] === '') return el
        if (typeof el === 'string') return signed(n)
        return { ...(el as Record<string, unknown>), url: signed(n) }
      })
    }
    return Buffer.from(JSON.stringify(task))
  }

  /** every image slot now holds a gateway URL (a link written escaped in one place and plain in another may not) */
  private allReplaced(text: string, links: ReadonlyArray<{ n: ImageSlot }>): boolean {
    // still JSON: only whole string tokens were swapped for other string tokens
    const after = taskImages(text) as TaskImages
    return links.every(({ n }) => linkAt(after, n).startsWith(`${this.publicUrl}/mj/image/`))
  }
}
