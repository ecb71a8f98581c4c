import type { Readable } from 'node:stream'
import { ImageFetchError } from './cdn-fetch.js'
import type { ImageStore, OpenImage, StoredImage } from './image-store.js'

/** Stands in when the archive's directory cannot be opened: nothing is archived, image requests get a clear 503. */
export class UnavailableImageStore implements ImageStore {
  readonly bytes = 0

  async open(): Promise<OpenImage | undefined> {
    return undefined
  }

  has(): boolean {
    return false
  }

  async put(_key: string, source: Readable): Promise<StoredImage> {
    source.destroy()
    throw new ImageFetchError('store_error', 'the image archive is unavailable')
  }

  async close(): Promise<void> {}
}
