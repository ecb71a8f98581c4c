import t from 'tap'
import fc from 'fast-check'
import { ImageSigner } from '../src/images/image-signing.js'
import { UPSTREAM_KEY } from './helpers/gateway.js'
import { startImageGateway } from './helpers/image-gateway.js'

const TOKEN = 'client-token-SECRET-4411'
const SIGNING_KEY = 'image-signing-key-SECRET-0042'
const env = { CLIENT_KEYS: `alice:${TOKEN}`, IMAGE_SIGNING_KEY: SIGNING_KEY }

function signed(id: string, n: number | undefined, exp: number, key = SIGNING_KEY): string {
  return new ImageSigner(key, 3600).query(id, n, exp)
}

const inAnHour = (): number => Math.floor(Date.now() / 1000) + 3600

t.test('docs/images.md: with client tokens an image needs the token (header) or a signed URL; nothing else', async (t) => {
  const ig = await startImageGateway(t, env)
  const none = await ig.image('/mj/image/a1')
  t.equal(none.status, 401)
  t.equal(none.json()['code'], 'MJGW_UNAUTHORIZED')
  const bearer = await ig.image('/mj/image/a1', { authorization: `Bearer ${TOKEN}` })
  t.equal(bearer.status, 200)
  t.same(bearer.body, ig.bytes('a1'))
  const secret = await ig.image('/mj/image/a1', { 'mj-api-secret': TOKEN })
  t.equal(secret.status, 200)
  const wrong = await ig.image('/mj/image/a1', { authorization: 'Bearer nope' })
  t.equal(wrong.status, 401)
  const url = await ig.image(`/mj/image/a1?${signed('a1', undefined, inAnHour())}`)
  t.equal(url.status, 200, 'a signed URL needs no token')
  t.same(url.body, ig.bytes('a1'))
  const head = await ig.image(`/mj/image/a1?${signed('a1', undefined, inAnHour())}`, {}, 'HEAD')
  t.equal(head.status, 200)
  t.equal(head.body.length, 0)
  t.equal(head.headers['content-length'], String(ig.bytes('a1').length))
})

t.test('docs/images.md: a forged, expired, other-task or other-image signature is 404, token or not, and the CDN is not asked', async (t) => {
  const ig = await startImageGateway(t, env)
  await ig.image('/mj/image/b1', { authorization: `Bearer ${TOKEN}` })
  const calls = ig.cdn.calls
  const exp = inAnHour()
  const good = signed('b1', undefined, exp)
  const sig = new URLSearchParams(good).get('sig') as string
  const cases: Record<string, string> = {
    forged: `exp=${exp}&sig=${'A'.repeat(sig.length)}`,
    'other key': signed('b1', undefined, exp, 'another-key'),
    expired: signed('b1', undefined, Math.floor(Date.now() / 1000) - 1),
    'exp moved': `exp=${exp + 3600}&sig=${sig}`,
    'other task': signed('b2', undefined, exp),
    'other image': signed('b1', 0, exp),
    'no sig': `exp=${exp}`,
    'no exp': `sig=${sig}`,
    'exp not a number': `exp=soon&sig=${sig}`,
    'sig twice': `exp=${exp}&sig=${sig}&sig=${sig}`
  }
  for (const [name, query] of Object.entries(cases)) {
    for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }] as Array<Record<string, string>>) {
      const res = await ig.image(`/mj/image/b1?${query}`, headers)
      t.equal(res.status, 404, name)
      t.equal(res.json()['code'], 'MJGW_TASK_NOT_FOUND', name)
    }
  }
  const elsewhere = await ig.image(`/mj/task/b1/fetch?${good}`)
  t.equal(elsewhere.status, 401, 'a signature opens images only')
  t.equal(ig.cdn.calls, calls)
})

t.test('docs/images.md: never: a random signature opens an image (fast-check)', async (t) => {
  const signer = new ImageSigner(SIGNING_KEY, 3600)
  fc.assert(
    fc.property(fc.string({ maxLength: 64 }), fc.string({ maxLength: 16 }), fc.option(fc.nat(999), { nil: undefined }), (sig, exp, n) => {
      const real = new URLSearchParams(signer.query('task', n, Number(exp))).get('sig')
      return sig === real || !signer.verify('task', n, exp, sig, Date.now())
    })
  )
  t.ok(signer.verify('task', 3, String(inAnHour()), new URLSearchParams(signer.query('task', 3, inAnHour())).get('sig') ?? '', Date.now()))
})

t.test('docs/images.md: without IMAGE_SIGNING_KEY the key is derived from the upstream key: stable across restarts, never the key itself', async (t) => {
  const one = await startImageGateway(t)
  const two = await startImageGateway(t)
  t.equal(one.gw.config.images.signingKey, two.gw.config.images.signingKey)
  t.not(one.gw.config.images.signingKey, UPSTREAM_KEY)
  t.notMatch(one.gw.config.images.signingKey, UPSTREAM_KEY)
  const exp = inAnHour()
  const res = await two.image(`/mj/image/d1?${signed('d1', undefined, exp, one.gw.config.images.signingKey)}`)
  t.equal(res.status, 200)
})

t.test('docs/images.md: no secret (upstream key, client token, signing key) in responses or logs of image requests', async (t) => {
  const ig = await startImageGateway(t, { ...env, LOG_LEVEL: 'info' })
  ig.tasks.set('s2', { imageUrl: ig.link('s2', -10) })
  const answers = [
    await ig.image('/mj/image/s1', { authorization: `Bearer ${TOKEN}` }),
    await ig.image('/mj/image/s2', { authorization: `Bearer ${TOKEN}` }),
    await ig.image(`/mj/image/s1?exp=1&sig=x`),
    await ig.image('/mj/image/s1', { authorization: `Bearer ${TOKEN}x` })
  ]
  const text = answers.map((a) => JSON.stringify(a.headers) + a.body.toString('latin1')).join('\n') + ig.gw.logs()
  for (const secret of [UPSTREAM_KEY, TOKEN, SIGNING_KEY]) t.notOk(text.includes(secret), secret.slice(0, 10))
  t.notOk(ig.cdn.calls > 1)
})
