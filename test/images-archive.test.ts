import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { sample } from './helpers/gateway.js'
import { startImageGateway } from './helpers/image-gateway.js'
import { waitFor } from './helpers/net.js'
import { openSse } from './helpers/sse-client.js'
import { taskBody } from '../src/demo/simulated-upstream.js'

const IMMUTABLE = 'private, max-age=31536000, immutable'

function blobFiles(dataDir: string): string[] {
  const root = join(dataDir, 'images', 'blobs')
  return readdirSync(root).flatMap((d) => readdirSync(join(root, d)).map((f) => join(root, d, f)))
}

t.test('docs/images.md: a SUCCESS task seen on the fetch miss path is archived in the background, then served without the CDN', async (t) => {
  const ig = await startImageGateway(t)
  const task = await ig.gw.fetchTask('t1')
  t.equal(task.status, 200)
  await ig.archived(1)
  t.equal(ig.cdn.calls, 1)
  ig.cdn.handler = () => ({ kind: 'status', status: 404 })
  const res = await ig.image('/mj/image/t1')
  t.equal(res.status, 200)
  t.same(res.body, ig.bytes('t1'))
  t.equal(res.headers['content-type'], 'image/png')
  t.equal(res.headers['cache-control'], IMMUTABLE)
  t.equal(res.headers['content-length'], String(ig.bytes('t1').length))
  t.equal(res.headers['accept-ranges'], 'bytes')
  t.match(res.headers['etag'], /^"[0-9a-f]{64}"$/)
  t.equal(ig.cdn.calls, 1, 'the CDN was asked once, by the archive')
  const m = await ig.gw.metrics()
  t.equal(sample(m, 'mj_gateway_image_requests_total', { result: 'hit' }), 1)
  t.equal(sample(m, 'mj_gateway_image_store_bytes'), ig.bytes('t1').length)
})

t.test('docs/images.md: an image asked for before the task was seen is fetched and archived on the way (result=fetched), then a hit', async (t) => {
  const ig = await startImageGateway(t)
  const first = await ig.image('/mj/image/t2')
  t.equal(first.status, 200)
  t.same(first.body, ig.bytes('t2'))
  const second = await ig.image('/mj/image/t2')
  t.equal(second.status, 200)
  t.same(second.body, ig.bytes('t2'))
  t.equal(second.headers['etag'], first.headers['etag'])
  t.equal(ig.cdn.calls, 1)
  const m = await ig.gw.metrics()
  t.equal(sample(m, 'mj_gateway_image_requests_total', { result: 'fetched' }), 1)
  t.equal(sample(m, 'mj_gateway_image_requests_total', { result: 'hit' }), 1)
  t.equal(sample(m, 'mj_gateway_images_archived_total', { outcome: 'ok' }), 1)
})

t.test('docs/images.md: concurrent first requests for one image share one CDN download', async (t) => {
  const ig = await startImageGateway(t)
  await ig.gw.fetchTask('t3')
  // the background download of the fetch above is held at the CDN; every request joins it
  ig.cdn.hold = true
  const results = Promise.all(Array.from({ length: 5 }, () => ig.image('/mj/image/t3b')))
  await waitFor(() => ig.cdn.calls >= 2)
  await new Promise((r) => setTimeout(r, 100))
  ig.cdn.release()
  for (const r of await results) {
    t.equal(r.status, 200)
    t.same(r.body, ig.bytes('t3b'))
  }
  t.equal(ig.cdn.calls, 2, 'one download for t3 (background), one for t3b (five requests)')
})

t.test('docs/images.md: a queued background download finds the image already archived by a request, and does not download it again', async (t) => {
  const ig = await startImageGateway(t, { IMAGE_FETCH_CONCURRENCY: '1' })
  ig.cdn.hold = (path) => path === '/img/qa.png'
  await ig.gw.fetchTask('qa') // downloading, held
  await ig.gw.fetchTask('qb') // queued behind it
  const b = await ig.image('/mj/image/qb') // a request does not wait for the queue
  t.equal(b.status, 200)
  ig.cdn.release()
  await ig.archived(2)
  await new Promise((r) => setTimeout(r, 100))
  t.equal(ig.cdn.calls, 2, 'qa once, qb once')
})

t.test('docs/images.md: imageUrls[n] is served at /mj/image/:id/:n (links or {url} objects); a missing n is 404 MJGW_IMAGE_NOT_FOUND', async (t) => {
  const ig = await startImageGateway(t)
  ig.tasks.set('g1', { imageUrls: [ig.link('g1', 86_400, 'g1-0'), { url: ig.link('g1', 86_400, 'g1-1') }, ''] })
  const zero = await ig.image('/mj/image/g1/0')
  t.equal(zero.status, 200)
  t.same(zero.body, ig.bytes('g1-0'))
  const one = await ig.image('/mj/image/g1/1')
  t.same(one.body, ig.bytes('g1-1'))
  const main = await ig.image('/mj/image/g1')
  t.same(main.body, ig.bytes('g1'))
  for (const n of ['2', '3']) {
    const missing = await ig.image(`/mj/image/g1/${n}`)
    t.equal(missing.status, 404)
    t.equal(missing.json()['code'], 'MJGW_IMAGE_NOT_FOUND')
  }
  const bad = await ig.image('/mj/image/g1/x')
  t.equal(bad.status, 400)
})

t.test('docs/images.md: the background archive keeps imageUrls too, within IMAGE_FETCH_CONCURRENCY', async (t) => {
  const ig = await startImageGateway(t, { IMAGE_FETCH_CONCURRENCY: '1' })
  ig.tasks.set('c1', { imageUrls: [0, 1, 2, 3].map((n) => ig.link('c1', 86_400, `c1-${n}`)) })
  await ig.gw.fetchTask('c1')
  await ig.archived(5)
  t.equal(ig.cdn.maxInflight, 1, 'never two downloads at once')
  ig.cdn.handler = () => ({ kind: 'status', status: 500 })
  for (const n of [0, 1, 2, 3]) t.same((await ig.image(`/mj/image/c1/${n}`)).body, ig.bytes(`c1-${n}`))
})

t.test('docs/images.md: a task that is not SUCCESS has no image (404 MJGW_IMAGE_NOT_FOUND); an unknown task is 404 MJGW_TASK_NOT_FOUND', async (t) => {
  const ig = await startImageGateway(t)
  ig.tasks.set('run', { status: 'IN_PROGRESS', imageUrl: ig.link('run') })
  const running = await ig.image('/mj/image/run')
  t.equal(running.status, 404)
  t.equal(running.json()['code'], 'MJGW_IMAGE_NOT_FOUND')
  ig.gw.upstream.enqueue({ kind: 'raw', body: '' })
  const unknown = await ig.image('/mj/image/nope')
  t.equal(unknown.status, 404)
  t.equal(unknown.json()['code'], 'MJGW_TASK_NOT_FOUND')
  ig.gw.upstream.enqueue({ kind: 'json', status: 404, body: { code: 404 } })
  const answered = await ig.image('/mj/image/nope2')
  t.equal(answered.status, 404)
  t.equal(answered.json()['code'], 'MJGW_TASK_NOT_FOUND')
  ig.gw.upstream.enqueue({ kind: 'json', status: 429, body: { code: 429 } })
  const limited = await ig.image('/mj/image/busy')
  t.equal(limited.status, 502)
  t.equal(limited.json()['code'], 'MJGW_UPSTREAM_ERROR')
  t.equal(ig.cdn.calls, 0)
})

t.test('docs/images.md: not archived and the link expired (ex=) → 404 MJGW_IMAGE_GONE without asking the CDN; a CDN 404 is gone too', async (t) => {
  const ig = await startImageGateway(t)
  ig.tasks.set('old', { imageUrl: ig.link('old', -60) })
  const expired = await ig.image('/mj/image/old')
  t.equal(expired.status, 404)
  t.equal(expired.json()['code'], 'MJGW_IMAGE_GONE')
  t.equal(ig.cdn.calls, 0)
  ig.cdn.handler = () => ({ kind: 'status', status: 404 })
  const dead = await ig.image('/mj/image/dead')
  t.equal(dead.status, 404)
  t.equal(dead.json()['code'], 'MJGW_IMAGE_GONE')
  const m = await ig.gw.metrics()
  t.equal(sample(m, 'mj_gateway_image_requests_total', { result: 'gone' }), 2)
  t.ok((sample(m, 'mj_gateway_images_archived_total', { outcome: 'gone' }) ?? 0) >= 1)
})

t.test('docs/images.md: an archived image outlives its link: served after the link expired and after a restart', async (t) => {
  const ig = await startImageGateway(t)
  await ig.gw.fetchTask('keep')
  await ig.archived(1)
  const etag = (await ig.image('/mj/image/keep')).headers['etag']
  const dataDir = ig.gw.config.dataDir
  await ig.gw.app.close()
  ig.cdn.handler = () => ({ kind: 'status', status: 404 })
  const again = await startImageGateway(t, { DATA_DIR: dataDir })
  again.tasks.set('keep', { imageUrl: ig.link('keep', -3600) })
  const res = await again.image('/mj/image/keep')
  t.equal(res.status, 200)
  t.same(res.body, ig.bytes('keep'))
  t.equal(res.headers['etag'], etag)
  t.equal(sample(await again.gw.metrics(), 'mj_gateway_image_store_bytes'), ig.bytes('keep').length, 'the store counts what it kept')
  t.equal(again.gw.upstream.calls, 0, 'a hit needs no task fetch')
})

t.test('docs/images.md: a store file deleted by hand is a miss: fetched again while the link lives, else gone', async (t) => {
  const ig = await startImageGateway(t)
  await ig.image('/mj/image/del')
  for (const f of blobFiles(ig.gw.config.dataDir)) rmSync(f)
  const refetched = await ig.image('/mj/image/del')
  t.equal(refetched.status, 200)
  t.same(refetched.body, ig.bytes('del'))
  t.equal(ig.cdn.calls, 2)
  for (const f of blobFiles(ig.gw.config.dataDir)) rmSync(f)
  ig.cdn.handler = () => ({ kind: 'status', status: 410 })
  const gone = await ig.image('/mj/image/del')
  t.equal(gone.status, 404)
  t.equal(gone.json()['code'], 'MJGW_IMAGE_GONE')
})

t.test('docs/images.md: an image larger than the whole IMAGE_STORE_MAX_BYTES is still served; the next one pushes it out', async (t) => {
  const ig = await startImageGateway(t, { IMAGE_STORE_MAX_BYTES: '10' })
  t.same((await ig.image('/mj/image/big-1')).body, ig.bytes('big-1'))
  t.same((await ig.image('/mj/image/big-2')).body, ig.bytes('big-2'))
  t.equal(sample(await ig.gw.metrics(), 'mj_gateway_image_store_bytes'), ig.bytes('big-2').length)
})

t.test('docs/images.md: IMAGE_STORE_MAX_BYTES bounds the archive, least recently used first', async (t) => {
  const probe = await startImageGateway(t)
  const size = probe.bytes('lru-a').length
  const ig = await startImageGateway(t, { IMAGE_STORE_MAX_BYTES: String(Math.floor(size * 2.5)) })
  await ig.image('/mj/image/lru-a')
  await ig.image('/mj/image/lru-b')
  await ig.image('/mj/image/lru-a') // a is now the more recently used
  await ig.image('/mj/image/lru-c') // over the bound: b goes
  t.equal(ig.cdn.calls, 3)
  t.equal((await ig.image('/mj/image/lru-a')).status, 200)
  t.equal((await ig.image('/mj/image/lru-c')).status, 200)
  t.equal(ig.cdn.calls, 3, 'a and c are still archived')
  t.equal((await ig.image('/mj/image/lru-b')).status, 200)
  t.equal(ig.cdn.calls, 4, 'b was evicted and fetched again')
  t.ok((sample(await ig.gw.metrics(), 'mj_gateway_image_store_bytes') ?? Infinity) <= size * 2.5 + size)
})

t.test('docs/images.md §3: a task whose SUCCESS arrives by push (an events subscriber, the refresher) is archived without any fetch', async (t) => {
  const ig = await startImageGateway(t, { REFRESH_INTERVAL_MS: '100' })
  let status = 'IN_PROGRESS'
  const body = (): string => JSON.stringify(taskBody('p1', status, status === 'SUCCESS' ? { imageUrl: ig.link('p1') } : {}))
  ig.gw.upstream.setHandler((req) => {
    if (req.method === 'POST' && req.url === '/mj/task/list-by-condition') return { kind: 'raw', body: `[${body()}]` }
    return { kind: 'json', status: 404, body: { code: 404 } }
  })
  const s = await openSse(`${ig.gw.url}/mj/task/p1/events`)
  await s.waitForEvents(1)
  status = 'SUCCESS'
  await s.waitForEnd()
  await ig.archived(1)
  t.equal(ig.gw.upstream.requests.filter((r) => r.method === 'GET').length, 0, 'no fetch: the SUCCESS came by the refresher')
  ig.cdn.handler = () => ({ kind: 'status', status: 404 })
  const res = await ig.image('/mj/image/p1')
  t.equal(res.status, 200, 'served from the archive')
  t.same(res.body, ig.bytes('p1'))
})
