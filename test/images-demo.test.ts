import t from 'tap'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { startGateway, UPSTREAM_KEY } from './helpers/gateway.js'
import { getBinary } from './helpers/image-gateway.js'
import { get, waitFor } from './helpers/net.js'
import { sample } from './helpers/gateway.js'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

t.test('docs/images.md (demo): the simulated CDN serves real PNGs until ex= passes, and the archived copy outlives the link', async (t) => {
  let skewMs = 0
  const sim = await startSimulatedUpstream({ apiKey: UPSTREAM_KEY, serveImages: true, now: () => Date.now() + skewMs })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, { IMAGE_HOSTS: '127.0.0.1' }, { upstreamUrl: sim.url })
  const id = sim.finishedTask({ outcome: 'SUCCESS', imageLinkTtlSeconds: 600 })
  const task = (await gw.fetchTask(id)).json() as { imageUrl: string }
  t.match(task.imageUrl, `${sim.url}/attachments/`)
  const direct = await getBinary(task.imageUrl)
  t.equal(direct.status, 200)
  t.equal(direct.headers['content-type'], 'image/png')
  t.same(direct.body.subarray(0, 8), PNG_SIGNATURE)
  await waitFor(async () => sample(await gw.metrics(), 'mj_gateway_images_archived_total', { outcome: 'ok' }) === 1)

  skewMs = 3_600_000 // an hour later for the CDN: the link is dead
  const dead = await get(task.imageUrl)
  t.equal(dead.status, 404)
  const archived = await getBinary(`${gw.url}/mj/image/${id}`)
  t.equal(archived.status, 200)
  t.same(archived.body, direct.body)

  const other = await get(`${sim.url}/attachments/x.png`)
  t.equal(other.status, 404, 'a link without ex= is dead')
  const plain = await startSimulatedUpstream({ apiKey: UPSTREAM_KEY })
  t.teardown(() => plain.close())
  t.equal((await get(`${plain.url}/attachments/x.png?ex=ffffffff`)).status, 401, 'without serveImages it is an unknown upstream path')
})
