import t from 'tap'
import { scanJsonObject, scanJsonObjectAsync } from '../src/http/json-members.js'
import { submitBody } from '../src/push/notify-hook.js'

t.test('scanJsonObjectAsync: a long body scanned in slices, with an explicit depth limit', async (t) => {
  const long = Buffer.from(JSON.stringify({ prompt: 'x'.repeat((1 << 20) * 2 + 7), a: { b: 1 } }))
  const sync = scanJsonObject(long)
  t.same(await scanJsonObjectAsync(long), sync, 'same members as the synchronous scan')
  t.same(await scanJsonObjectAsync(long, 5), sync, 'also with maxDepth=5')
  const deep = await scanJsonObjectAsync(long, 1)
  t.equal(deep.ok, false, 'a nested object beyond maxDepth=1 is refused on the long path')
  const bad = Buffer.concat([Buffer.from('{"p":"'), Buffer.alloc((1 << 20) + 3, 0xff), Buffer.from('"}')])
  t.same(await scanJsonObjectAsync(bad), { ok: false, reason: 'body is not valid UTF-8', kind: 'syntax' }, 'a long body that is not UTF-8 is a syntax error')
  const small = await scanJsonObjectAsync(Buffer.from('{"a":{"b":1}}'), 1)
  t.equal(small.ok, false, 'and on the short path')
})

t.test('submitBody: the gateway hook added to an empty object body', async (t) => {
  const hook = 'https://gw.example/mj/notify/abc'
  for (const text of ['{}', '{ }', '{"notifyHook":"http://evil"}']) {
    const body = Buffer.from(text)
    const scanned = scanJsonObject(body)
    if (!scanned.ok) throw new Error('scan')
    const out = submitBody(body, scanned.members, false, hook).toString()
    t.same(JSON.parse(out), { notifyHook: hook }, `${text} -> only the gateway hook`)
  }
  const out = submitBody(Buffer.from('{}'), [], false, hook).toString()
  t.equal(out, `{"notifyHook":${JSON.stringify(hook)}}`, 'exactly {"notifyHook":"…"}')
})
