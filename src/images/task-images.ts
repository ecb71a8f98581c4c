import type { ImageSlot } from './image-signing.js'

/** The image links a task body carries. */
export interface TaskImages {
  readonly id: string
  readonly status: string
  /** `imageUrl`, '' when none */
  readonly imageUrl: string
  /** `imageUrls[n]` as links ('' where an element holds none); empty when the task has no such array */
  readonly imageUrls: readonly string[]
}

/** An `imageUrls` element: a link, or (as some relays send) an object with a `url`. */
function linkOf(element: unknown): string {
  if (typeof element === 'string') return element
  if (element !== null && typeof element === 'object') {
    const url = (element as Record<string, unknown>)['url']
    if (typeof url === 'string') return url
  }
  return ''
}

/** Reads a task body; undefined when it is not a JSON object with a string id. */
export function taskImages(body: Buffer | string): TaskImages | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'))
  } catch {
    return undefined
  }
  return taskImagesOf(parsed)
}

export function taskImagesOf(parsed: unknown): TaskImages | undefined {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined
  const task = parsed as Record<string, unknown>
  const id = task['id']
  if (typeof id !== 'string') return undefined
  const status = typeof task['status'] === 'string' ? task['status'] : ''
  const imageUrl = typeof task['imageUrl'] === 'string' ? task['imageUrl'] : ''
  const list = task['imageUrls']
  const imageUrls = Array.isArray(list) ? list.map(linkOf) : []
  return { id, status, imageUrl, imageUrls }
}

/** The link of one image of the task; '' when the task has none there. */
export function linkAt(images: TaskImages, n: ImageSlot): string {
  if (n === undefined) return images.imageUrl
  return images.imageUrls[n] ?? ''
}

/** Every image of a finished task, as (slot, link) pairs: what the archive keeps. */
export function archivable(images: TaskImages | undefined): Array<{ n: ImageSlot; url: string }> {
  if (images === undefined || images.status !== 'SUCCESS') return []
  const out: Array<{ n: ImageSlot; url: string }> = []
  if (images.imageUrl !== '') out.push({ n: undefined, url: images.imageUrl })
  images.imageUrls.forEach((url, n) => {
    if (url !== '') out.push({ n, url })
  })
  return out
}
