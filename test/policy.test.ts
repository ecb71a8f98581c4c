import fc from 'fast-check'
import t from 'tap'
import { TERMINAL_STATUSES, classify, imageUrlExpiry, terminalTtlMs, type CacheRules } from '../src/cache/policy.js'

const RULES: CacheRules = { ttlSeconds: 3600, urlExpiryMarginSeconds: 300, pollCacheMs: 1000 }
const NOW = 1_730_621_826_053
const nowS = Math.floor(NOW / 1000)
const hex = (s: number) => s.toString(16)
const cdn = (ex: string) => `https://cdn.discordapp.com/attachments/1/2/a.png?ex=${ex}&is=6727d8f2&hm=abc&`
const body = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o))

t.test('docs/caching.md §1 terminal = SUCCESS, FAILURE, CANCEL', async (t) => {
  t.same([...TERMINAL_STATUSES].sort(), ['CANCEL', 'FAILURE', 'SUCCESS'])
  for (const status of ['SUCCESS', 'FAILURE', 'CANCEL']) {
    t.same(classify(body({ id: 'T1', status }), 'T1', NOW, RULES), { kind: 'terminal', ttlMs: 3_600_000 }, status)
  }
  for (const status of ['NOT_START', 'SUBMITTED', 'MODAL', 'IN_PROGRESS', '', 'success', 'UNKNOWN']) {
    t.same(classify(body({ id: 'T1', status }), 'T1', NOW, RULES), { kind: 'live', ttlMs: 1000 }, `"${status}" is not terminal`)
  }
  t.same(classify(body({ id: 'T1' }), 'T1', NOW, RULES), { kind: 'live', ttlMs: 1000 }, 'no status: live')
  t.same(classify(body({ id: 'T1', status: 42 }), 'T1', NOW, RULES), { kind: 'live', ttlMs: 1000 }, 'a non-string status: live')
  t.same(classify(body({ id: 'T1', status: 'IN_PROGRESS' }), 'T1', NOW, { ...RULES, pollCacheMs: 0 }), { kind: 'live', ttlMs: 0 })
})

t.test('docs/caching.md §1 empty body or null is not found; a non-object is bad', async (t) => {
  for (const text of ['', '   ', '\n', 'null', ' null\n']) {
    t.same(classify(body(text), 'T1', NOW, RULES), { kind: 'not_found' }, JSON.stringify(text))
  }
  t.same(classify(body('<html>oops</html>'), 'T1', NOW, RULES), { kind: 'bad', reason: 'body is not JSON' })
  t.same(classify(body('{"id":"T1",'), 'T1', NOW, RULES), { kind: 'bad', reason: 'body is not JSON' }, 'truncated')
  for (const text of ['[]', '[{"id":"T1","status":"SUCCESS"}]', '"T1"', '42', 'true']) {
    t.same(classify(body(text), 'T1', NOW, RULES), { kind: 'bad', reason: 'body is not a JSON object' }, text)
  }
})

t.test('docs/caching.md §1 a body whose id differs (or is missing) is foreign: never cached', async (t) => {
  t.same(classify(body({ id: 'T2', status: 'SUCCESS' }), 'T1', NOW, RULES), { kind: 'foreign' })
  t.same(classify(body({ status: 'SUCCESS' }), 'T1', NOW, RULES), { kind: 'foreign' }, 'missing id')
  t.same(classify(body({ id: null, status: 'SUCCESS' }), 'T1', NOW, RULES), { kind: 'foreign' }, 'null id')
  t.same(classify(body({ id: 1, status: 'SUCCESS' }), '1', NOW, RULES), { kind: 'foreign' }, 'a number is not the id string')
  t.same(classify(body({ id: 't1', status: 'SUCCESS' }), 'T1', NOW, RULES), { kind: 'foreign' }, 'case matters')
})

t.test('docs/caching.md §2 ex= is a hexadecimal Unix time in seconds', async (t) => {
  t.equal(imageUrlExpiry(cdn('6729298c')), 0x6729298c)
  t.equal(imageUrlExpiry(cdn('6729298C')), 0x6729298c, 'upper case hex')
  t.equal(imageUrlExpiry('https://cdn.example/a.png?x=1&ex=ff'), 255, 'anywhere in the query')
  t.equal(imageUrlExpiry('https://cdn.example/a.png'), undefined, 'no ex')
  t.equal(imageUrlExpiry('https://cdn.example/a.png?ex='), undefined, 'empty ex')
  t.equal(imageUrlExpiry(cdn('zz12')), undefined, 'not hex')
  t.equal(imageUrlExpiry(cdn('0x12')), undefined, '0x prefix is junk')
  t.equal(imageUrlExpiry(cdn('-12')), undefined, 'negative is junk')
  t.equal(imageUrlExpiry(cdn('1234567890abc')), undefined, 'absurdly long')
  t.equal(imageUrlExpiry('not a url ?ex=6729298c'), undefined, 'not a URL')
  t.equal(imageUrlExpiry(''), undefined, 'empty imageUrl')
  t.equal(imageUrlExpiry(null), undefined, 'null imageUrl')
  t.equal(imageUrlExpiry(undefined), undefined, 'no imageUrl')
  t.equal(imageUrlExpiry(12345), undefined, 'a number')
})

t.test('docs/caching.md §2 a terminal entry lives CACHE_TTL_SECONDS but never past ex − margin', async (t) => {
  t.equal(terminalTtlMs(undefined, NOW, RULES), 3_600_000, 'no imageUrl: the full TTL')
  t.equal(terminalTtlMs(cdn('junk'), NOW, RULES), 3_600_000, 'junk ex: the full TTL')
  t.equal(terminalTtlMs(cdn(hex(nowS + 86_400)), NOW, RULES), 3_600_000, 'far expiry: the TTL caps')
  const ex = nowS + 300 + 120
  t.equal(terminalTtlMs(cdn(hex(ex)), NOW, RULES), (ex - 300) * 1000 - NOW, 'expiry 2 min past the margin: ~2 min')
  t.equal(terminalTtlMs(cdn(hex(nowS + 300)), NOW, RULES), 0, 'just inside the margin: not cached')
  t.equal(terminalTtlMs(cdn(hex(nowS + 10)), NOW, RULES), 0, 'deep inside the margin')
  t.equal(terminalTtlMs(cdn(hex(nowS - 3600)), NOW, RULES), 0, 'already expired')
  t.equal(terminalTtlMs(cdn(hex(nowS + 10)), NOW, { ...RULES, urlExpiryMarginSeconds: 0 }), (nowS + 10) * 1000 - NOW, 'margin 0')

  const task = { id: 'T1', status: 'SUCCESS', imageUrl: cdn(hex(ex)) }
  t.same(classify(body(task), 'T1', NOW, RULES), { kind: 'terminal', ttlMs: (ex - 300) * 1000 - NOW })
  t.same(classify(body({ ...task, imageUrl: cdn(hex(nowS + 60)) }), 'T1', NOW, RULES), { kind: 'terminal', ttlMs: 0 })
  t.same(classify(body({ ...task, status: 'IN_PROGRESS', imageUrl: cdn(hex(nowS + 60)) }), 'T1', NOW, RULES), { kind: 'live', ttlMs: 1000 }, 'a live task is not capped')
})

t.test('docs/caching.md §2 property: 0 ≤ ttl ≤ CACHE_TTL_SECONDS and never past ex − margin', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: -200_000, max: 200_000 }),
      fc.integer({ min: 0, max: 999 }),
      (ttlSeconds, margin, exOffset, subMs) => {
        const now = NOW + subMs
        const rules = { ttlSeconds, urlExpiryMarginSeconds: margin, pollCacheMs: 0 }
        const ex = nowS + exOffset
        const ttl = terminalTtlMs(cdn(hex(Math.max(0, ex))), now, rules)
        return ttl >= 0 && ttl <= ttlSeconds * 1000 && (ttl === 0 || now + ttl <= (Math.max(0, ex) - margin) * 1000)
      }
    )
  )
  t.pass('held for every generated case')
})
