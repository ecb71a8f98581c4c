import { isUtf8 } from 'node:buffer'

/** Deeper bodies are refused (CONTRACT §9): no client needs them, and deep nesting is how parsers are made to fall over. */
export const MAX_JSON_DEPTH = 64

/** One member of the top-level object: byte offsets into the body. */
export interface Member {
  /** the key's opening quote */
  readonly start: number
  /** just past the key's closing quote */
  readonly keyEnd: number
  /** the value's first byte */
  readonly valueStart: number
  /** just past the value's last byte */
  readonly end: number
}

/** why a body was refused: not JSON (or a `__proto__` key), JSON but not an object, or nested too deep */
export type ScanFailure = 'syntax' | 'type' | 'depth'

export type Scanned = { ok: true; members: Member[] } | { ok: false; reason: string; kind: ScanFailure }

const QUOTE = 0x22
const BACKSLASH = 0x5c
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74])
const isWs = (b: number | undefined): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09
const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39
const isHex = (b: number | undefined): boolean =>
  b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66))

class Invalid extends Error {
  constructor(
    message: string,
    readonly kind: ScanFailure = 'syntax'
  ) {
    super(message)
  }
}

/** `"__proto__"` as a key: refused as Fastify's own parser refuses it (prototype poisoning of any JS consumer) */
const PROTO_KEY = Buffer.from('"__proto__"')

/**
 * Checks that `body` is one JSON object (RFC 8259, UTF-8) nested at most `maxDepth` deep, and finds the byte ranges
 * of its top-level members, in one pass over the bytes without building the value: no copy of a 20 MB base64
 * image, no recursion, every digit of every number left as it was.
 */
export function scanJsonObject(body: Buffer, maxDepth = MAX_JSON_DEPTH): Scanned {
  const run = checked(body, maxDepth)
  for (;;) {
    const step = run.next()
    if (step.done === true) return step.value
  }
}

/**
 * scanJsonObject, giving the event loop a turn after every SLICE bytes of a long string: a 20 MB body takes
 * a while to check, and other clients' requests (cache hits) are answered in between rather than after it.
 */
export async function scanJsonObjectAsync(body: Buffer, maxDepth = MAX_JSON_DEPTH): Promise<Scanned> {
  if (body.length <= SLICE) return scanJsonObject(body, maxDepth)
  const run = checked(body, maxDepth)
  for (;;) {
    const step = run.next()
    if (step.done === true) return step.value
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}

/** the scan with its verdict: pauses where scan() pauses (the async driver yields the loop there), then the result */
function* checked(body: Buffer, maxDepth: number): Generator<void, Scanned> {
  if (!isUtf8(body)) return { ok: false, reason: 'body is not valid UTF-8', kind: 'syntax' }
  try {
    return { ok: true, members: yield* scan(body, maxDepth) }
  } catch (err) {
    return { ok: false, reason: (err as Invalid).message, kind: (err as Invalid).kind }
  }
}

/** bytes of one string checked without a pause (scanJsonObjectAsync) */
const SLICE = 1 << 20
/** stringEnd's answer when it stopped at its limit: PAUSED + where to go on */
const PAUSED = 2 ** 40

/** yields (nothing) wherever a long string was cut into slices; returns the top-level members */
function* scan(b: Buffer, maxDepth: number): Generator<void, Member[]> {
  const n = b.length
  let i = 0
  const ws = (): void => {
    while (isWs(b[i])) i++
  }
  const fail = (what: string): never => {
    throw new Invalid(i >= n ? `body is not valid JSON: ${what} expected, body ended` : `body is not valid JSON: ${what} expected at byte ${i}`)
  }
  const string = function* (): Generator<void, void> {
    let end = stringEnd(b, i + 1)
    while (end >= PAUSED) {
      yield
      end = stringEnd(b, end - PAUSED)
    }
    if (end < 0) {
      i = -end - 1
      fail(i >= n ? 'closing quote' : b[i] === BACKSLASH ? 'escape' : 'escaped control character')
    }
    i = end
  }
  const digits = (): void => {
    if (!isDigit(b[i])) fail('digit')
    while (isDigit(b[i])) i++
  }
  const number = (): void => {
    if (b[i] === 0x2d) i++
    if (b[i] === 0x30) i++
    else digits()
    if (b[i] === 0x2e) {
      i++
      digits()
    }
    if (b[i] === 0x65 || b[i] === 0x45) {
      i++
      if (b[i] === 0x2b || b[i] === 0x2d) i++
      digits()
    }
  }
  const literal = (word: string): void => {
    for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) fail(word)
    i += word.length
  }

  ws()
  if (b[i] !== 0x7b) {
    if (i >= n || b[i] === 0x5b || b[i] === QUOTE || b[i] === 0x2d || isDigit(b[i]) || b[i] === 0x74 || b[i] === 0x66 || b[i] === 0x6e) {
      throw new Invalid('body must be a JSON object', 'type')
    }
    fail('a JSON object')
  }
  // the open containers: true = object, false = array
  const stack: boolean[] = []
  const members: Member[] = []
  let memberStart = 0
  let keyEnd = 0
  let valueStart = 0
  // `key`: a key (or the end of an empty object) comes next; else a value does
  let expectKey = false
  for (;;) {
    if (expectKey) {
      ws()
      if (b[i] !== QUOTE) fail('a key')
      const keyStart = i
      if (stack.length === 1) memberStart = i
      yield* string()
      if (isProto(b, keyStart, i)) throw new Invalid('body has a forbidden __proto__ key')
      if (stack.length === 1) keyEnd = i
      ws()
      if (b[i] !== 0x3a) fail('":"')
      i++
      ws()
      if (stack.length === 1) valueStart = i
      expectKey = false
    }
    // a value at b[i]
    const c = b[i]
    if (c === 0x7b || c === 0x5b) {
      if (stack.length >= maxDepth) throw new Invalid(`body nested deeper than ${maxDepth} levels`, 'depth')
      stack.push(c === 0x7b)
      i++
      ws()
      if (b[i] === (c === 0x7b ? 0x7d : 0x5d)) {
        stack.pop()
        i++
      } else {
        expectKey = c === 0x7b
        if (c === 0x5b) ws()
        continue
      }
    } else if (c === QUOTE) yield* string()
    else if (c === 0x2d || isDigit(c)) number()
    else if (c === 0x74) literal('true')
    else if (c === 0x66) literal('false')
    else if (c === 0x6e) literal('null')
    else fail('a value')
    // after a value: the member it ends, then a comma or the end of its container(s)
    for (;;) {
      if (stack.length === 0) {
        ws()
        if (i !== n) fail('the end of the body')
        return members
      }
      if (stack.length === 1) members.push({ start: memberStart, keyEnd, valueStart, end: i })
      ws()
      const inObject = stack[stack.length - 1] as boolean
      if (b[i] === 0x2c) {
        i++
        ws()
        expectKey = inObject
        break
      }
      if (b[i] !== (inObject ? 0x7d : 0x5d)) fail(inObject ? '"," or "}"' : '"," or "]"')
      stack.pop()
      i++
    }
  }
}

/**
 * Where the string whose first character is at `i` ends (just past its closing quote); for an invalid string,
 * -(position of the fault) - 1; after SLICE bytes without an end, PAUSED + where to go on. A top-level function
 * over plain locals: a 20 MB base64 string is a few tight loops.
 */
function stringEnd(b: Buffer, i: number): number {
  const n = b.length
  const stop = Math.min(n, i + SLICE)
  for (;;) {
    // the tight part: plain characters
    let c = 0
    while (i < stop) {
      c = b[i] as number
      if (c === QUOTE || c === BACKSLASH || c < 0x20) break
      i++
    }
    if (i >= n) return -n - 1
    if (i >= stop) return PAUSED + i
    if (c === QUOTE) return i + 1
    if (c < 0x20) return -i - 1
    const e = b[i + 1]
    if (e === 0x75) {
      if (!(isHex(b[i + 2]) && isHex(b[i + 3]) && isHex(b[i + 4]) && isHex(b[i + 5]))) return -i - 1
      i += 6
    } else if (e !== undefined && ESCAPES.has(e)) i += 2
    else return -i - 1
  }
}

/** the key between `start` and `end` (quotes included) reads `__proto__`, escapes and all */
function isProto(b: Buffer, start: number, end: number): boolean {
  if (end - start === PROTO_KEY.length) return b.compare(PROTO_KEY, 0, PROTO_KEY.length, start, end) === 0
  // an escaped spelling is at most 6 bytes a character
  if (end - start > 6 * 9 + 2 || b.indexOf(BACKSLASH, start) >= end || b.indexOf(BACKSLASH, start) === -1) return false
  return JSON.parse(b.toString('utf8', start, end)) === '__proto__'
}

/** A top-level member's key as a string. */
export function memberKey(body: Buffer, m: Member): string {
  return JSON.parse(body.toString('utf8', m.start, m.keyEnd)) as string
}

/**
 * A top-level key as a relay reads it: case-insensitively and after NFKC folding, because a Go relay matches JSON
 * keys that way (`NOTIFYHOOK` and a Kelvin-sign `K` included).
 */
export function foldedKey(body: Buffer, m: Member): string {
  return memberKey(body, m).normalize('NFKC').toLowerCase()
}

/**
 * `body` without the members `drop` picks, every other byte as it was (the same Buffer when none is dropped).
 * The separator before each kept member is the one that stood before it, so the layout survives.
 */
export function withoutMembers(body: Buffer, members: readonly Member[], drop: (m: Member) => boolean): Buffer {
  const kept = members.filter((m) => !drop(m))
  if (kept.length === members.length) return body
  const first = members[0] as Member
  const last = members[members.length - 1] as Member
  const parts: Buffer[] = [body.subarray(0, first.start)]
  kept.forEach((m, k) => {
    // from the end of the member before it in the original (the comma and spacing), except for the first kept
    const index = members.indexOf(m)
    if (k > 0) parts.push(body.subarray((members[index - 1] as Member).end, m.start))
    parts.push(body.subarray(m.start, m.end))
  })
  parts.push(body.subarray(last.end))
  return Buffer.concat(parts)
}
