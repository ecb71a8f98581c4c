import { mkdtempSync, rmSync, truncateSync, utimesSync, writeFileSync, existsSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { failureOf, ImageFetchError } from '../src/images/cdn-fetch.js'
import { DiskImageStore, HOT_IMAGE_MAX_BYTES } from '../src/images/disk-store.js'
import { archivable, linkAt, taskImages } from '../src/images/task-images.js'
import { pino } from 'pino'
import { CdnFetcher } from '../src/images/cdn-fetch.js'
import { ImageArchiver } from '../src/images/image-archiver.js'
import { GatewayMetrics } from '../src/metrics/gateway-metrics.js'
import { startImageCdn, pngBytes } from './helpers/image-cdn.js'

function tempDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-store-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('archive outcomes: what an error on the way from the CDN to the disk means', async (t) => {
  t.equal(failureOf(new ImageFetchError('gone', 'x')), 'gone')
  t.equal(failureOf({ code: 'UND_ERR_HEADERS_TIMEOUT' }), 'timeout')
  t.equal(failureOf({ code: 'UND_ERR_BODY_TIMEOUT' }), 'timeout')
  t.equal(failureOf({ code: 'UND_ERR_CONNECT_TIMEOUT' }), 'timeout')
  t.equal(failureOf({ name: 'TimeoutError' }), 'timeout')
  t.equal(failureOf({ code: 'UND_ERR_SOCKET' }), 'error')
  t.equal(failureOf({ code: 'SQLITE_FULL' }), 'store_error')
  t.equal(failureOf({ code: 'ENOSPC' }), 'store_error')
  t.equal(failureOf({ code: 'ECONNREFUSED' }), 'error')
  t.equal(failureOf(null), 'error')
  t.equal(failureOf(new Error('x')), 'error')
})

t.test('task images: links read from task bodies, finished tasks only', async (t) => {
  t.equal(taskImages('not json'), undefined)
  t.same(archivable(undefined), [])
  t.equal(taskImages('[]'), undefined)
  t.equal(taskImages('{"id":1}'), undefined)
  const odd = taskImages('{"id":"a","status":"SUCCESS","imageUrl":5,"imageUrls":[null,7,{"url":3},"u"]}')
  t.same(odd, { id: 'a', status: 'SUCCESS', imageUrl: '', imageUrls: ['', '', '', 'u'] })
  t.same(archivable(odd as NonNullable<typeof odd>), [{ n: 3, url: 'u' }])
  t.equal(linkAt(odd as NonNullable<typeof odd>, 9), '')
  const noStatus = taskImages(Buffer.from('{"id":"b","imageUrl":"x"}'))
  t.same(archivable(noStatus as NonNullable<typeof noStatus>), [])
})

t.test('disk store: a file cut short by hand is a miss and forgotten; stale temp files are swept at start; the bytes survive reopening', async (t) => {
  const dir = tempDir(t)
  const store = new DiskImageStore(dir, 1 << 20)
  const stored = await store.put('k1', Readable.from([Buffer.from('hello image')]), 'image/png')
  t.equal(store.bytes, 11)
  t.ok(store.has('k1'))
  // the same bytes under another key: stored once
  await store.put('k2', Readable.from([Buffer.from('hello image')]), 'image/png')
  t.equal(store.bytes, 11)
  // cut short before any read (nothing of it is in memory yet)
  truncateSync(join(dir, 'blobs', stored.hash.slice(0, 2), stored.hash), 5)
  t.equal(await store.open('k1'), undefined)
  t.notOk(store.has('k2'), 'both keys of the lost blob are forgotten')
  t.equal(store.bytes, 0)
  await store.put('k3', Readable.from([Buffer.from('kept')]), 'image/webp')
  await store.close()
  t.notOk(store.has('k3'), 'an index that cannot be read (here: closed at shutdown) answers no, and does not throw')

  const old = join(dir, 'tmp', 'old-leftover')
  const young = join(dir, 'tmp', 'young-write')
  writeFileSync(old, 'x')
  writeFileSync(young, 'y')
  const hourAgo = new Date(Date.now() - 2 * 3_600_000)
  utimesSync(old, hourAgo, hourAgo)
  const again = new DiskImageStore(dir, 1 << 20)
  t.notOk(existsSync(old), 'a crashed write from long ago is swept')
  t.ok(existsSync(young), 'a write under way in another process is left alone')
  t.equal(again.bytes, 4)
  const kept = await again.open('k3')
  t.equal(kept?.contentType, 'image/webp')
  t.equal(kept?.body(0, 3).toString(), 'kept')
  await again.close()
  t.same(readdirSync(join(dir, 'tmp')), ['young-write'])
})

t.test('disk store: a source that fails leaves nothing behind', async (t) => {
  const dir = tempDir(t)
  const store = new DiskImageStore(dir, 1 << 20)
  const failing = new Readable({
    read() {
      this.destroy(new ImageFetchError('too_large', 'too big'))
    }
  })
  await t.rejects(store.put('k', failing, 'image/png'), new ImageFetchError('too_large', 'too big'))
  t.notOk(store.has('k'))
  t.same(readdirSync(join(dir, 'tmp')), [])
  await store.close()
})

t.test('disk store: an image up to HOT_IMAGE_MAX_BYTES is read once and then served from memory; a larger one is streamed from disk each time', async (t) => {
  const dir = tempDir(t)
  const store = new DiskImageStore(dir, 64 << 20)
  t.teardown(() => store.close())
  const small = await store.put('small', Readable.from([Buffer.from('small image')]), 'image/png')
  const bigBytes = Buffer.alloc(HOT_IMAGE_MAX_BYTES + 1, 7)
  const big = await store.put('big', Readable.from([bigBytes]), 'image/png')

  const first = await store.open('small')
  t.same(first?.body(0, 4), Buffer.from('small'), 'a range of it')
  first?.release()
  const path = join(dir, 'blobs', small.hash.slice(0, 2), small.hash)
  // the file's content changed on disk (same size): what is served is what was read once, from memory
  writeFileSync(path, 'SMALL IMAGE')
  const again = await store.open('small')
  t.same(again?.body(0, small.size - 1), Buffer.from('small image'), 'read once: served from memory')
  rmSync(path)
  t.equal(await store.open('small'), undefined, 'its file deleted by hand: a miss at once, though memory holds it')

  const opened = await store.open('big')
  const body = opened?.body(0, big.size - 1)
  t.ok(body instanceof Readable, 'a larger image is a stream')
  const chunks: Buffer[] = []
  for await (const c of body as Readable) chunks.push(c as Buffer)
  t.ok(Buffer.concat(chunks).equals(bigBytes))
  const unread = await store.open('big')
  unread?.release()
  unread?.release()
  rmSync(join(dir, 'blobs', big.hash.slice(0, 2), big.hash))
  t.equal(await store.open('big'), undefined, 'not held in memory: its file gone, it is a miss')
})

t.test('archiver: an image stored while its caller looked the task up is not downloaded again (docs/images.md §3)', async (t) => {
  const cdn = await startImageCdn(() => ({ kind: 'image', bytes: pngBytes(8, 8) }))
  t.teardown(() => cdn.close())
  const store = new DiskImageStore(tempDir(t), 1 << 20)
  t.teardown(() => store.close())
  const archiver = new ImageArchiver({
    store,
    fetcher: new CdnFetcher({ hosts: ['127.0.0.1'], maxBytes: 1 << 20, idleTimeoutMs: 5000 }),
    metrics: new GatewayMetrics({ cache: { entries: () => 0, bytes: () => 0 }, redis: false }),
    concurrency: 1,
    namespace: 'ns',
    log: pino({ level: 'silent' })
  })
  t.teardown(() => archiver.close())
  const url = `${cdn.url}/img/a.png`
  // a request and the background archive at once: one download
  await Promise.all([archiver.archive('ns/a', url), archiver.archive('ns/a', url)])
  t.equal(cdn.calls, 1, 'one download for two callers at once')
  // a request that found nothing stored, then looked the task up while that download ended
  await archiver.archive('ns/a', url)
  t.equal(cdn.calls, 1, 'stored by then: not downloaded again')
  t.ok(store.has('ns/a'))
})
