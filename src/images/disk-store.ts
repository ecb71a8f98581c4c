import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { open, rename, rm, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import Database from 'better-sqlite3'
import { LRUCache } from 'lru-cache'
import type { ImageStore, OpenImage, StoredImage } from './image-store.js'

/** A temp file older than this is a crashed write's leftover (another process sharing DATA_DIR may be writing younger ones). */
const STALE_TEMP_MS = 3_600_000
/** how often last-use times reach the index (reads only touch memory) */
const TOUCH_FLUSH_MS = 10_000
/** read size when streaming: fewer, larger writes to the socket */
const READ_CHUNK = 1 << 20
/**
 * Images up to this size are read whole and kept in memory (HOT_BYTES in all, least recently used out): a page of
 * thumbnails asks the same few images again and again, and for an image this small opening, reading and closing a
 * file costs more than sending it (docs/images.md §5, measured in §9).
 */
export const HOT_IMAGE_MAX_BYTES = 1 << 20
export const HOT_BYTES = 32 << 20

interface Row {
  hash: string
  size: number
  content_type: string
}

/**
 * The image archive on local disk: each distinct image once, at blobs/{hash[0..2]}/{hash} (content-addressed), and an
 * index (SQLite, via better-sqlite3) of which task image is which blob, each blob's size and last use. Bytes are
 * streamed to a temp file and renamed into place only once complete and flushed, so a reader never sees a partial
 * image. Bounded by maxBytes: the least recently used blobs go first.
 */
export class DiskImageStore implements ImageStore {
  private readonly db: Database.Database
  private readonly blobs: string
  private readonly temp: string
  private readonly touched = new Map<string, number>()
  /** the bytes of small images recently served, by hash (content-addressed: never stale) */
  private readonly hot = new LRUCache<string, Buffer>({ maxSize: HOT_BYTES, sizeCalculation: (b) => Math.max(1, b.length) })
  private readonly flushTimer: NodeJS.Timeout
  private held = 0
  private readonly q: {
    find: Database.Statement<[string], Row>
    hasKey: Database.Statement<[string], { one: number }>
    putBlob: Database.Statement<[string, number, string, number]>
    putRef: Database.Statement<[string, string, number]>
    touch: Database.Statement<[number, string]>
    oldest: Database.Statement<[string], Row>
    dropRefs: Database.Statement<[string]>
    dropBlob: Database.Statement<[string]>
    total: Database.Statement<[], { total: number | null }>
    blobSize: Database.Statement<[string], { size: number }>
  }

  constructor(
    dir: string,
    private readonly maxBytes: number
  ) {
    this.blobs = join(dir, 'blobs')
    this.temp = join(dir, 'tmp')
    mkdirSync(this.blobs, { recursive: true })
    mkdirSync(this.temp, { recursive: true })
    this.db = new Database(join(dir, 'index.db'))
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.pragma('busy_timeout = 2000')
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, content_type TEXT NOT NULL, last_used INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS blobs_last_used ON blobs (last_used);
      CREATE TABLE IF NOT EXISTS refs (key TEXT PRIMARY KEY, hash TEXT NOT NULL, created INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS refs_hash ON refs (hash);
    `)
    this.q = {
      find: this.db.prepare('SELECT b.hash, b.size, b.content_type FROM refs r JOIN blobs b ON b.hash = r.hash WHERE r.key = ?'),
      hasKey: this.db.prepare('SELECT 1 AS one FROM refs r JOIN blobs b ON b.hash = r.hash WHERE r.key = ?'),
      putBlob: this.db.prepare(
        'INSERT INTO blobs (hash, size, content_type, last_used) VALUES (?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE SET last_used = excluded.last_used'
      ),
      putRef: this.db.prepare('INSERT INTO refs (key, hash, created) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET hash = excluded.hash'),
      touch: this.db.prepare('UPDATE blobs SET last_used = MAX(last_used, ?) WHERE hash = ?'),
      oldest: this.db.prepare('SELECT hash, size, content_type FROM blobs WHERE hash != ? ORDER BY last_used LIMIT 1'),
      dropRefs: this.db.prepare('DELETE FROM refs WHERE hash = ?'),
      dropBlob: this.db.prepare('DELETE FROM blobs WHERE hash = ?'),
      total: this.db.prepare('SELECT SUM(size) AS total FROM blobs'),
      blobSize: this.db.prepare('SELECT size FROM blobs WHERE hash = ?')
    }
    this.held = this.q.total.get()?.total ?? 0
    this.sweepTemp()
    this.flushTimer = setInterval(() => this.flushTouches(), TOUCH_FLUSH_MS)
    this.flushTimer.unref()
  }

  get bytes(): number {
    return this.held
  }

  has(key: string): boolean {
    try {
      return this.q.hasKey.get(key) !== undefined
    } catch {
      // The index cannot be read (a disk error, or closed at shutdown). The archiver asks this from the background
      // (a refresh, a callback), where a throw would stop the process: not known to be archived; the download that
      // follows meets the same trouble in put() and is counted as a store error.
      return false
    }
  }

  async open(key: string): Promise<OpenImage | undefined> {
    const row = this.q.find.get(key)
    if (row === undefined) return undefined
    const path = this.blobPath(row.hash)
    // Deleted or cut short by hand (a takedown), or evicted by another process sharing the directory: a miss, and
    // forgotten, whether memory holds the bytes or not. One synchronous stat: a few µs, no trip through the thread pool.
    if (statSync(path, { throwIfNoEntry: false })?.size !== row.size) {
      this.forget(row.hash)
      return undefined
    }
    this.touched.set(row.hash, Date.now())
    const held = this.hot.get(row.hash)
    if (held !== undefined) return heldImage(row, held)
    let fh: FileHandle
    try {
      fh = await open(path, 'r')
      /* c8 ignore start -- gone between the stat and the open: a race a test cannot order */
    } catch {
      this.forget(row.hash)
      return undefined
    }
    /* c8 ignore stop */
    if (row.size > HOT_IMAGE_MAX_BYTES) return openImage(row, fh)
    const bytes = await fh.readFile().finally(() => fh.close())
    this.hot.set(row.hash, bytes)
    return heldImage(row, bytes)
  }


  async put(key: string, source: Readable, contentType: string): Promise<StoredImage> {
    const tmp = join(this.temp, `${Date.now()}-${randomBytes(8).toString('hex')}`)
    const hasher = createHash('sha256')
    let size = 0
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hasher.update(chunk)
        size += chunk.length
        cb(null, chunk)
      }
    })
    try {
      // flush: the bytes are on disk before the rename makes them visible (no empty image after a power cut)
      await pipeline(source, tap, createWriteStream(tmp, { flags: 'wx', flush: true }))
      const hash = hasher.digest('hex')
      const path = this.blobPath(hash)
      mkdirSync(join(this.blobs, hash.slice(0, 2)), { recursive: true })
      await rename(tmp, path)
      const now = Date.now()
      const existed = this.db.transaction(() => {
        const found = this.q.blobSize.get(hash) !== undefined
        this.q.putBlob.run(hash, size, contentType, now)
        this.q.putRef.run(key, hash, now)
        return found
      })()
      if (!existed) this.held += size
      this.evict(hash)
      return { hash, size, contentType }
    } catch (err) {
      source.destroy()
      await rm(tmp, { force: true }).catch(() => undefined)
      throw err
    }
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer)
    this.flushTouches()
    this.db.close()
  }

  private blobPath(hash: string): string {
    return join(this.blobs, hash.slice(0, 2), hash)
  }

  /** Least recently used first, until the store is within its bound; `keep` (the image just stored) stays. */
  private evict(keep: string): void {
    if (this.held <= this.maxBytes) return
    this.flushTouches()
    while (this.held > this.maxBytes) {
      const victim = this.q.oldest.get(keep)
      if (victim === undefined) break
      this.forget(victim.hash)
      unlink(this.blobPath(victim.hash)).catch(() => undefined)
    }
  }

  private forget(hash: string): void {
    const row = this.db.transaction(() => {
      const found = this.q.blobSize.get(hash)
      this.q.dropRefs.run(hash)
      this.q.dropBlob.run(hash)
      return found
    })()
    if (row !== undefined) this.held -= row.size
    this.touched.delete(hash)
    this.hot.delete(hash)
  }

  private flushTouches(): void {
    if (this.touched.size === 0) return
    const batch = [...this.touched]
    this.touched.clear()
    this.db.transaction(() => {
      for (const [hash, at] of batch) this.q.touch.run(at, hash)
    })()
  }

  private sweepTemp(): void {
    const cutoff = Date.now() - STALE_TEMP_MS
    for (const name of readdirSync(this.temp)) {
      const path = join(this.temp, name)
      // throwIfNoEntry false: another process may have renamed it away since readdir
      const stat = statSync(path, { throwIfNoEntry: false })
      if (stat !== undefined && stat.mtimeMs < cutoff) rmSync(path, { force: true, recursive: true })
    }
  }
}

function openImage(row: Row, fh: FileHandle): OpenImage {
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    fh.close().catch(() => undefined)
  }
  return {
    hash: row.hash,
    size: row.size,
    contentType: row.content_type,
    body(start, end) {
      released = true
      // the stream owns the descriptor from here and closes it when it ends or is destroyed
      return createReadStream('', { fd: fh, start, end, highWaterMark: READ_CHUNK, autoClose: true })
    },
    release
  }
}

/** an image whose bytes are in memory: nothing to release */
function heldImage(row: Row, bytes: Buffer): OpenImage {
  return {
    hash: row.hash,
    size: row.size,
    contentType: row.content_type,
    body: (start, end) => bytes.subarray(start, end + 1),
    release: () => undefined
  }
}
