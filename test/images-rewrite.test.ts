import t from 'tap'
import { etagOf } from '../src/cache/task-cache.js'
import { ImageSigner } from '../src/images/image-signing.js'
import { TaskRewriter } from '../src/images/task-rewrite.js'
import { loadConfig } from '../src/config.js'
import { idFromUrl, taskBody } from '../src/demo/simulated-upstream.js'
import { startImageGateway } from './helpers/image-gateway.js'
import { get, post } from './helpers/net.js'

const PUBLIC = 'https://img.example.test/gw'
const TOKEN = 'client-token-SECRET-7070'
const auth = { authorization: `Bearer ${TOKEN}` }

t.test('docs/images.md: IMAGE_REWRITE=on: imageUrl/imageUrls become signed gateway URLs under PUBLIC_URL; route and hit lane send the same bytes and etag', async (t) => {
  // EVENT_LOOP_MAX_DELAY_MS=0: on a loaded machine the lane would leave requests to the shedding check
  const ig = await startImageGateway(t, { IMAGE_REWRITE: 'on', PUBLIC_URL: `${PUBLIC}/`, CLIENT_KEYS: TOKEN, EVENT_LOOP_MAX_DELAY_MS: '0' })
  ig.tasks.set('rw', { imageUrls: [ig.link('rw', 86_400, 'rw-0'), { url: ig.link('rw', 86_400, 'rw-1') }] })
  const miss = await ig.gw.fetchTask('rw', auth)
  t.equal(miss.headers['x-cache'], 'MISS')
  const task = miss.json() as { imageUrl: string; imageUrls: [string, { url: string }]; prompt: string }
  t.match(task.imageUrl, new RegExp(`^${PUBLIC}/mj/image/rw\\?exp=\\d+&sig=[\\w-]+$`))
  t.match(task.imageUrls[0], new RegExp(`^${PUBLIC}/mj/image/rw/0\\?exp=`))
  t.match(task.imageUrls[1].url, new RegExp(`^${PUBLIC}/mj/image/rw/1\\?exp=`))
  t.equal(task.prompt, 'pig --v 6.1')
  t.equal(miss.headers['etag'], etagOf(Buffer.from(miss.body)), 'the etag follows the rewritten bytes')
  const answeredBefore = (ig.gw.app.hitLane as NonNullable<typeof ig.gw.app.hitLane>).answered
  const hit = await ig.gw.fetchTask('rw', auth)
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal((ig.gw.app.hitLane as NonNullable<typeof ig.gw.app.hitLane>).answered, answeredBefore + 1, 'answered by the hit lane')
  t.equal(hit.body, miss.body)
  t.equal(hit.headers['etag'], miss.headers['etag'])
  const notModified = await ig.gw.fetchTask('rw', { ...auth, 'if-none-match': miss.headers['etag'] as string })
  t.equal(notModified.status, 304)
  // a query string sends the request past the hit lane to the route
  const routeHit = await get(`${ig.gw.url}/mj/task/rw/fetch?via=route`, auth)
  t.equal(routeHit.headers['x-cache'], 'HIT')
  t.equal(routeHit.headers['etag'], miss.headers['etag'])
  t.equal(routeHit.body, miss.body)
  // the signed URLs work without a token
  for (const [url, name] of [
    [task.imageUrl, 'rw'],
    [task.imageUrls[0], 'rw-0'],
    [task.imageUrls[1].url, 'rw-1']
  ] as const) {
    const res = await ig.image(url.slice(PUBLIC.length))
    t.equal(res.status, 200, name)
    t.same(res.body, ig.bytes(name))
  }
})

t.test('docs/images.md: IMAGE_REWRITE=on rewrites list-by-condition answers too; tasks without a finished image stay as sent', async (t) => {
  const ig = await startImageGateway(t, { IMAGE_REWRITE: 'on', PUBLIC_URL: PUBLIC, CLIENT_KEYS: TOKEN, PASSTHROUGH: 'on' })
  const bodies: Record<string, Record<string, unknown>> = {
    l1: taskBody('l1', 'SUCCESS', { imageUrl: ig.link('l1') }),
    l2: taskBody('l2', 'IN_PROGRESS', { imageUrl: ig.link('l2') }),
    l3: taskBody('l3', 'FAILURE')
  }
  ig.gw.upstream.setHandler((req) => {
    if (req.method === 'POST') return { kind: 'json', body: Object.values(bodies) }
    return { kind: 'json', body: bodies[idFromUrl(req.url) ?? ''] }
  })
  const res = await post(`${ig.gw.url}/mj/task/list-by-condition`, { ids: ['l1', 'l2', 'l3'] }, auth)
  t.equal(res.status, 200)
  const list = res.json() as Array<{ id: string; imageUrl: string }>
  t.match(list[0]?.imageUrl, new RegExp(`^${PUBLIC}/mj/image/l1\\?exp=`))
  t.equal(list[1]?.imageUrl, bodies['l2']?.['imageUrl'], 'a running task keeps its preview link')
  t.equal(list[2]?.imageUrl, '')
  // again, l1 now from the cache: the same rewritten bytes
  const again = await post(`${ig.gw.url}/mj/task/list-by-condition`, { ids: ['l1'] }, auth)
  t.equal(again.headers['x-cache-hits'], '1')
  t.same((again.json() as unknown[])[0], list[0])
  const fetched = await ig.gw.fetchTask('l2', auth)
  t.equal(fetched.body, JSON.stringify(bodies['l2']), 'not finished: byte for byte')
  await ig.archived(1)
})

t.test('task rewrite: links escaped differently than JSON.stringify would are still replaced; the memo holds within a signing step', async (t) => {
  const signer = new ImageSigner('k', 3600)
  const rw = new TaskRewriter(signer, PUBLIC)
  const link = 'https://cdn.discordapp.com/a/b.png?ex=ffffffff&is=1&hm=2&'
  const escaped = Buffer.from(`{"id":"e1","status":"SUCCESS","imageUrl":${JSON.stringify(link).replace(/\//g, '\\/')},"imageUrls":[${JSON.stringify(link)},"",{"url":"x"}]}`)
  const now = Date.now()
  const out = rw.present(escaped, etagOf(escaped), now)
  const parsed = JSON.parse(out.body.toString()) as { imageUrl: string; imageUrls: [string, string, { url: string }] }
  t.match(parsed.imageUrl, `${PUBLIC}/mj/image/e1?exp=`)
  t.match(parsed.imageUrls[0], `${PUBLIC}/mj/image/e1/0?exp=`)
  t.equal(parsed.imageUrls[1], '')
  t.match(parsed.imageUrls[2].url, `${PUBLIC}/mj/image/e1/2?exp=`)
  t.equal(rw.present(escaped, etagOf(escaped), now + 1000), out, 'memoised')
  const onlyEscaped = Buffer.from(`{"id":"e3","status":"SUCCESS","imageUrl":${JSON.stringify(link).replace(/\//g, '\\/')}}`)
  t.match(JSON.parse(rw.present(onlyEscaped, etagOf(onlyEscaped), now).body.toString()), { imageUrl: `${PUBLIC}/mj/image/e3?exp=` })
  const same = Buffer.from(`{"id":"e2","status":"SUCCESS","imageUrl":${JSON.stringify(link)},"imageUrls":[${JSON.stringify(link)}]}`)
  const twice = JSON.parse(rw.present(same, etagOf(same), now).body.toString()) as { imageUrl: string; imageUrls: string[] }
  t.equal(twice.imageUrls[0], twice.imageUrl, 'one link in two places: one signed URL for both')
  for (const body of ['not json', '[1]', '{"id":"x","status":"SUCCESS","imageUrl":""}']) {
    const b = Buffer.from(body)
    t.equal(rw.present(b, etagOf(b), now).body, b, body)
  }
})

t.test('config: IMAGE_REWRITE=on needs PUBLIC_URL; PUBLIC_URL and IMAGE_HOSTS are checked', async (t) => {
  const base = { UPSTREAM_API_KEY: 'k' }
  t.throws(() => loadConfig({ ...base, IMAGE_REWRITE: 'on' }), /^IMAGE_REWRITE: on needs PUBLIC_URL/)
  t.throws(() => loadConfig({ ...base, IMAGE_REWRITE: 'yes' }), /^IMAGE_REWRITE: must be one of off, on/)
  t.throws(() => loadConfig({ ...base, PUBLIC_URL: 'ftp://x' }), /^PUBLIC_URL: must be http or https/)
  t.throws(() => loadConfig({ ...base, PUBLIC_URL: 'nope' }), /^PUBLIC_URL: not a valid URL/)
  t.throws(() => loadConfig({ ...base, PUBLIC_URL: 'https://a.example/?x=1' }), /^PUBLIC_URL: must be an origin/)
  t.throws(() => loadConfig({ ...base, IMAGE_HOSTS: 'https://cdn.example.com' }), /^IMAGE_HOSTS: not a host name/)
  t.throws(() => loadConfig({ ...base, IMAGE_MAX_BYTES: '0' }), /^IMAGE_MAX_BYTES:/)
  t.throws(() => loadConfig({ ...base, IMAGE_FETCH_CONCURRENCY: '0' }), /^IMAGE_FETCH_CONCURRENCY:/)
  const c = loadConfig({ ...base, PUBLIC_URL: 'https://gw.example.com/base/', IMAGE_HOSTS: ' CDN.Example.com , [::1],' })
  t.equal(c.publicUrl, 'https://gw.example.com/base')
  t.same(c.images.hosts, ['cdn.example.com', '[::1]'])
  const d = loadConfig(base)
  t.same(d.images.hosts, ['cdn.discordapp.com', 'media.discordapp.net'])
  t.equal(d.dataDir, './data')
  t.equal(d.images.maxBytes, 33554432)
  t.equal(d.images.storeMaxBytes, 2147483648)
  t.equal(d.images.fetchConcurrency, 4)
  t.equal(d.images.rewrite, false)
})
