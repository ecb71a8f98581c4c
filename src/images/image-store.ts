import type { Readable } from 'node:stream'

/** An archived image as the routes see it, whatever holds its bytes. */
export interface StoredImage {
  /** sha256 of the bytes, hex: the content address, and the etag */
  readonly hash: string
  readonly size: number
  readonly contentType: string
}

/** An archived image ready to be read: its bytes are held open until streamed or released. */
export interface OpenImage extends StoredImage {
  /** the bytes start..end (inclusive), in memory or as a stream; the image is released when the stream ends or is destroyed */
  body(start: number, end: number): Readable | Buffer
  /** releases the image without reading it (a HEAD, a 304, a 416) */
  release(): void
}

/**
 * Where archived images live. The routes and the archiver know only this interface, so a store backed by
 * S3-compatible object storage (shared by every replica) can replace the disk store without touching them.
 * Keys are opaque strings naming one image of one task; bytes are stored once per distinct content.
 */
export interface ImageStore {
  /** the image archived under key (marked as used), or undefined: never archived, evicted, or its bytes lost */
  open(key: string): Promise<OpenImage | undefined>
  /** true when key has an archived image (not marked as used) */
  has(key: string): boolean
  /**
   * Stores the bytes of source under key. Until the returned promise resolves nothing of them is visible; when
   * source fails (the fetcher destroys it: too large, timed out, cut off) nothing is kept and the error is thrown.
   */
  put(key: string, source: Readable, contentType: string): Promise<StoredImage>
  /** bytes held, all images */
  readonly bytes: number
  close(): Promise<void>
}
