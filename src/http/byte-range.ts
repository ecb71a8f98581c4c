/** What a `Range` header asks of a representation of `size` bytes (RFC 9110 §14). */
export type RangeAnswer =
  /** no usable Range: send it all (absent, not `bytes=`, malformed, or several ranges: all allowed to be ignored) */
  | { kind: 'full' }
  /** bytes start..end inclusive */
  | { kind: 'partial'; start: number; end: number }
  /** nothing of it lies within the representation: 416 */
  | { kind: 'unsatisfiable' }

const ONE_RANGE = /^bytes=(\d{0,15})-(\d{0,15})$/

/** A single byte range is served; a list of ranges is answered in full (multipart answers are not worth their cost). */
export function byteRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: 'full' }
  const m = ONE_RANGE.exec(header.trim().replace(/\s+/g, ''))
  if (m === null) return { kind: 'full' }
  const [, first = '', last = ''] = m
  if (first === '' && last === '') return { kind: 'full' }
  if (first === '') {
    // the last N bytes
    const n = Number(last)
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(first)
  if (last !== '' && Number(last) < start) return { kind: 'full' }
  if (start >= size) return { kind: 'unsatisfiable' }
  return { kind: 'partial', start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) }
}
