import { readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { sample } from './helpers/gateway.js'
import { pngBytes } from './helpers/image-cdn.js'
import { startImageGateway } from './helpers/image-gateway.js'
import { waitFor } from './helpers/net.js'

function files(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name)
  } catch {
    return []
  }
}

t.test('docs/images.md: a host not in IMAGE_HOSTS is never asked: 502 MJGW_UPSTREAM_BAD_RESPONSE, nothing archived', async (t) => {
  const ig = await startImageGateway(t)
  // the same CDN, under a name the operator did not list
  ig.tasks.set('h1', { imageUrl: ig.link('h1').replace('127.0.0.1', 'localhost') })
  ig.tasks.set('h2', { imageUrl: 'ftp://127.0.0.1/x.png' })
  ig.tasks.set('h3', { imageUrl: 'not a url' })
  for (const id of ['h1', 'h2', 'h3']) {
    const res = await ig.image(`/mj/image/${id}`)
    t.equal(res.status, 502, id)
    t.equal(res.json()['code'], 'MJGW_UPSTREAM_BAD_RESPONSE')
  }
  t.equal(ig.cdn.calls, 0)
  t.equal(files(join(ig.gw.config.dataDir, 'images', 'blobs')).length, 0)
  t.ok((sample(await ig.gw.metrics(), 'mj_gateway_images_archived_total', { outcome: 'not_allowed' }) ?? 0) >= 3)
})

t.test('docs/images.md: redirects are followed only to listed hosts', async (t) => {
  const ig = await startImageGateway(t)
  ig.cdn.handler = (path) => {
    if (path === '/img/r-ok.png') return { kind: 'redirect', location: '/img/final.png' }
    if (path === '/img/r-bad.png') return { kind: 'redirect', location: ig.link('x').replace('127.0.0.1', 'localhost') }
    if (path === '/img/r-loop.png') return { kind: 'redirect', location: '/img/r-loop.png', status: 301 }
    if (path === '/img/r-junk.png') return { kind: 'redirect', location: 'http://[::1' }
    if (path === '/img/r-none.png') return { kind: 'status', status: 302 }
    return { kind: 'image', bytes: ig.bytes('final') }
  }
  const ok = await ig.image('/mj/image/r-ok')
  t.equal(ok.status, 200)
  t.same(ok.body, ig.bytes('final'))
  const bad = await ig.image('/mj/image/r-bad')
  t.equal(bad.status, 502)
  t.equal(bad.json()['code'], 'MJGW_UPSTREAM_BAD_RESPONSE')
  const junk = await ig.image('/mj/image/r-junk')
  t.equal(junk.status, 502)
  t.equal(junk.json()['code'], 'MJGW_UPSTREAM_BAD_RESPONSE')
  const none = await ig.image('/mj/image/r-none')
  t.equal(none.status, 502, 'a redirect without a location')
  t.equal(none.json()['code'], 'MJGW_UPSTREAM_UNREACHABLE')
  const loop = await ig.image('/mj/image/r-loop')
  t.equal(loop.status, 502)
  t.equal(loop.json()['code'], 'MJGW_UPSTREAM_UNREACHABLE')
})

t.test('docs/images.md: a body that is not image/* is refused (502) and never archived', async (t) => {
  const ig = await startImageGateway(t)
  ig.cdn.handler = () => ({ kind: 'not-image' })
  for (let i = 0; i < 2; i++) {
    const res = await ig.image('/mj/image/html')
    t.equal(res.status, 502)
    t.equal(res.json()['code'], 'MJGW_UPSTREAM_BAD_RESPONSE')
  }
  t.equal(ig.cdn.calls, 2, 'not archived: asked again')
  ig.cdn.handler = () => ({ kind: 'image', bytes: ig.bytes('untyped'), contentType: '' })
  const untyped = await ig.image('/mj/image/untyped')
  t.equal(untyped.status, 502, 'no content-type at all')
})

t.test('docs/images.md: more than IMAGE_MAX_BYTES is refused (declared or counted), and leaves no file behind', async (t) => {
  const big = pngBytes(64, 64, 3)
  const ig = await startImageGateway(t, { IMAGE_MAX_BYTES: String(big.length - 1) })
  ig.cdn.handler = (path) => ({ kind: 'image', bytes: big, chunked: path.includes('chunked') })
  for (const id of ['declared', 'chunked']) {
    const res = await ig.image(`/mj/image/${id}`)
    t.equal(res.status, 502, id)
    t.equal(res.json()['code'], 'MJGW_UPSTREAM_BAD_RESPONSE')
    t.match(res.json()['message'], /IMAGE_MAX_BYTES/)
  }
  t.same(files(join(ig.gw.config.dataDir, 'images', 'blobs')), [])
  t.same(files(join(ig.gw.config.dataDir, 'images', 'tmp')), [])
  t.equal(sample(await ig.gw.metrics(), 'mj_gateway_images_archived_total', { outcome: 'too_large' }), 2)
})

t.test('docs/images.md: a CDN that hangs mid-body ends in 504, no half image is kept, and the next request gets the whole one', async (t) => {
  const ig = await startImageGateway(t, { UPSTREAM_TIMEOUT_MS: '300' })
  ig.cdn.handler = () => ({ kind: 'hang-mid-body', bytes: ig.bytes('hang') })
  const res = await ig.image('/mj/image/hang')
  t.equal(res.status, 504)
  t.equal(res.json()['code'], 'MJGW_UPSTREAM_TIMEOUT')
  t.same(files(join(ig.gw.config.dataDir, 'images', 'blobs')), [])
  await waitFor(() => files(join(ig.gw.config.dataDir, 'images', 'tmp')).length === 0)
  ig.cdn.handler = () => ({ kind: 'image', bytes: ig.bytes('hang') })
  const whole = await ig.image('/mj/image/hang')
  t.equal(whole.status, 200)
  t.same(whole.body, ig.bytes('hang'))
})

t.test('docs/images.md: a CDN failing (5xx, refused) is a 502 while the link lives; the background archive retries with backoff', async (t) => {
  const ig = await startImageGateway(t)
  ig.cdn.handler = () => ({ kind: 'status', status: 503 })
  const failing = await ig.image('/mj/image/flaky')
  t.equal(failing.status, 502)
  t.equal(failing.json()['code'], 'MJGW_UPSTREAM_UNREACHABLE')
  // background: the first try fails, a retry about a second later succeeds
  let tries = 0
  ig.cdn.handler = (path) => {
    if (path !== '/img/bg.png') return { kind: 'status', status: 503 }
    return ++tries === 1 ? { kind: 'status', status: 503 } : { kind: 'image', bytes: ig.bytes('bg') }
  }
  await ig.gw.fetchTask('bg')
  await ig.archived(1)
  t.equal(tries, 2)
  ig.cdn.handler = () => ({ kind: 'status', status: 404 })
  t.same((await ig.image('/mj/image/bg')).body, ig.bytes('bg'))
})

t.test('docs/images.md: the background archive gives up on a link that dies before its retry', async (t) => {
  const ig = await startImageGateway(t)
  // ex= counts in whole seconds: made 350–600 ms into a second, the link lives 400–650 ms more, past the first try
  // and short of the first retry (750–1250 ms after it)
  while (Date.now() % 1000 < 350 || Date.now() % 1000 >= 600) await new Promise((r) => setTimeout(r, 5))
  const link = ig.link('short', 1)
  const expiresAt = parseInt(new URL(link).searchParams.get('ex') as string, 16) * 1000
  ig.tasks.set('short', { imageUrl: link })
  const calledAt: number[] = []
  ig.cdn.handler = () => {
    calledAt.push(Date.now())
    return { kind: 'status', status: 500 }
  }
  await ig.gw.fetchTask('short')
  // a busy machine may make the first try after the link died: then it is "gone" (expired) and asks the CDN nothing
  const given = async (): Promise<number> => {
    const m = await ig.gw.metrics()
    return (sample(m, 'mj_gateway_images_archived_total', { outcome: 'error' }) ?? 0) + (sample(m, 'mj_gateway_images_archived_total', { outcome: 'gone' }) ?? 0)
  }
  await waitFor(async () => (await given()) >= 1, 10_000)
  await new Promise((r) => setTimeout(r, Math.max(0, expiresAt + 1500 - Date.now())))
  t.ok(calledAt.length <= 1, `at most the first try reached the CDN (${calledAt.length})`)
  t.ok(
    calledAt.every((at) => at < expiresAt),
    'no retry past the link expiry'
  )
  t.equal(ig.cdn.calls, calledAt.length)
})

t.test('docs/images.md: a disk that fails is a clear 503 MJGW_IMAGE_STORE_ERROR; tasks are still served, and images again once it mends', async (t) => {
  const ig = await startImageGateway(t)
  const tmp = join(ig.gw.config.dataDir, 'images', 'tmp')
  rmSync(tmp, { recursive: true })
  writeFileSync(tmp, 'not a directory')
  const res = await ig.image('/mj/image/disk')
  t.equal(res.status, 503)
  t.equal(res.json()['code'], 'MJGW_IMAGE_STORE_ERROR')
  t.equal((await ig.gw.fetchTask('disk2')).status, 200)
  t.equal(sample(await ig.gw.metrics(), 'mj_gateway_images_archived_total', { outcome: 'store_error' }), 1)
})

t.test('docs/images.md: a DATA_DIR that cannot be used at start leaves the gateway serving tasks; images answer 503', async (t) => {
  const probe = await startImageGateway(t)
  const notADir = join(probe.gw.config.dataDir, 'file')
  writeFileSync(notADir, 'x')
  const ig = await startImageGateway(t, { DATA_DIR: notADir, LOG_LEVEL: 'error' })
  t.equal((await ig.gw.fetchTask('ok')).status, 200)
  const res = await ig.image('/mj/image/ok')
  t.equal(res.status, 503)
  t.equal(res.json()['code'], 'MJGW_IMAGE_STORE_ERROR')
  t.match(ig.gw.logs(), /image archive unavailable/)
})
