import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import fc from 'fast-check'
import { MAX_JSON_DEPTH, memberKey, scanJsonObject, withoutMembers } from '../src/http/json-members.js'

const isObjectJson = (text: string): boolean => {
  try {
    const v: unknown = JSON.parse(text)
    return v !== null && typeof v === 'object' && !Array.isArray(v)
  } catch {
    return false
  }
}

t.test('accepts exactly the JSON objects JSON.parse accepts (docs/tenancy.md: bodies)', async (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.json(), fc.string(), fc.jsonValue().map((v) => JSON.stringify({ a: v }, null, 1))), (text) => {
      // a `__proto__` key is refused on purpose (tested below)
      return scanJsonObject(Buffer.from(text)).ok === (isObjectJson(text) && !text.includes('__proto__'))
    }),
    { numRuns: 2000 }
  )
  for (const bad of ['{', '{"a"}', '{"a":}', '{"a":1,}', '{"a":01}', '{"a":1.}', '{"a":"\\x"}', '{"a":"\u0001"}', '{"a":tru}', '[1]', '{"a":1}x', '{"a":[1,]}', '{"a":[1 2]}', '{"a":1 "b":2}', '{"a" 1}', '{"a":"abc', '{"a":"\\u12G4"}', '']) {
    t.equal(scanJsonObject(Buffer.from(bad)).ok, false, bad)
  }
  t.equal(scanJsonObject(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])).ok, false, 'invalid UTF-8')
  t.equal(scanJsonObject(Buffer.from(' { "a" : [ 1 , {"b":-0.5e+3} ] , "c" : "\\u00e9\\n" } ')).ok, true)
})

t.test('a __proto__ key at any depth, however spelled, is refused; kinds of failure are told apart', async (t) => {
  for (const text of ['{"__proto__":1}', '{"a":[{"__proto__":{}}]}', '{"\\u005f_proto__":1}']) {
    t.match(scanJsonObject(Buffer.from(text)), { ok: false, kind: 'syntax' }, text)
  }
  t.equal(scanJsonObject(Buffer.from('{"__proto":1,"a\\n":2,"__proto__x":3}')).ok, true)
  for (const text of ['[]', '"x"', '1', '-1', 'null', 'true', 'false', '  ']) t.match(scanJsonObject(Buffer.from(text)), { ok: false, kind: 'type' }, text)
  t.match(scanJsonObject(Buffer.from('x')), { ok: false, kind: 'syntax' })
})

t.test('nesting deeper than 64 levels is refused, 64 is fine', async (t) => {
  const nested = (depth: number): string => '{"a":'.repeat(1) + '['.repeat(depth - 1) + ']'.repeat(depth - 1) + '}'
  t.equal(scanJsonObject(Buffer.from(nested(MAX_JSON_DEPTH))).ok, true)
  const deep = scanJsonObject(Buffer.from(nested(MAX_JSON_DEPTH + 1)))
  t.same(deep, { ok: false, reason: 'body nested deeper than 64 levels', kind: 'depth' })
  t.equal(scanJsonObject(Buffer.from(nested(100_000))).ok, false, 'no stack overflow')
})

t.test('removing members keeps every other byte (numbers keep every digit)', async (t) => {
  const body = Buffer.from('{ "prompt": "pig", "notifyHook" : "http://x",\n "n": 12345678901234567890.123456789e-5, "z": [1, {"notifyHook": 1}] }')
  const scanned = scanJsonObject(body)
  if (!scanned.ok) throw new Error('scan failed')
  t.same(scanned.members.map((m) => memberKey(body, m)), ['prompt', 'notifyHook', 'n', 'z'])
  const out = withoutMembers(body, scanned.members, (m) => memberKey(body, m) === 'notifyHook')
  t.equal(out.toString(), '{ "prompt": "pig",\n "n": 12345678901234567890.123456789e-5, "z": [1, {"notifyHook": 1}] }')
  t.equal(withoutMembers(body, scanned.members, () => false), body, 'nothing dropped: the same buffer')
  const first = withoutMembers(body, scanned.members, (m) => memberKey(body, m) === 'prompt')
  t.equal(first.toString(), '{ "notifyHook" : "http://x",\n "n": 12345678901234567890.123456789e-5, "z": [1, {"notifyHook": 1}] }')
  t.equal(withoutMembers(body, scanned.members, () => true).toString(), '{  }')
})

/** a `__proto__` key anywhere in a value (the scanner refuses those at any depth: the test above) */
function hasProtoKey(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasProtoKey)
  if (v === null || typeof v !== 'object') return false
  return Object.keys(v).some((k) => k === '__proto__' || hasProtoKey((v as Record<string, unknown>)[k]))
}

t.test('property: dropping members equals filtering the parsed object', async (t) => {
  fc.assert(
    fc.property(fc.dictionary(fc.string().filter((k) => k !== '__proto__'), fc.jsonValue()).filter((o) => !hasProtoKey(o)), fc.func(fc.boolean()), fc.boolean(), (obj, pick, pretty) => {
      const body = Buffer.from(JSON.stringify(obj, null, pretty ? 2 : 0))
      const scanned = scanJsonObject(body)
      if (!scanned.ok) return false
      const out = withoutMembers(body, scanned.members, (m) => pick(memberKey(body, m)))
      const expected = Object.fromEntries(Object.entries(obj).filter(([k]) => !pick(k)))
      return isDeepStrictEqual(JSON.parse(out.toString()), expected)
    }),
    { numRuns: 500 }
  )
  t.pass('500 objects')
})
