/**
 * A scriptable image CDN on 127.0.0.1: serves PNG-like bytes at /img/{name}, counts requests, and can
 * redirect, refuse, hang mid-body, send something that is not an image, or send more than it declared.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { deflateSync } from 'node:zlib'

export type CdnBehavior =
  | { kind: 'image'; bytes: Buffer; contentType?: string; chunked?: boolean }
  | { kind: 'status'; status: number }
  | { kind: 'redirect'; location: string; status?: number }
  | { kind: 'not-image' }
  /** headers and half the body, then silence until close() */
  | { kind: 'hang-mid-body'; bytes: Buffer }

export interface ImageCdn {
  /** http://127.0.0.1:PORT */
  readonly url: string
  /** requests received */
  readonly calls: number
  /** requests being answered right now, and the most at once so far */
  readonly inflight: number
  readonly maxInflight: number
  /** how each request is answered (path given without the query) */
  handler: (path: string) => CdnBehavior
  /** answers are held until release() while true (or while it says so for the path) */
  hold: boolean | ((path: string) => boolean)
  release(): void
  close(): Promise<void>
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32(buf: Buffer): number {
  let c = 0xffffffff
  for (const b of buf) c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(td))
  return Buffer.concat([len, td, crc])
}

/** a real PNG, width × height, filled with one colour from `seed` (and noise, so sizes differ) */
export function pngBytes(width: number, height: number, seed = 1): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8
  ihdr[9] = 2
  const raw = Buffer.alloc((width * 3 + 1) * height)
  let x = seed
  for (let i = 0; i < raw.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    raw[i] = i % (width * 3 + 1) === 0 ? 0 : x >> 16
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))])
}

export async function startImageCdn(handler: (path: string) => CdnBehavior = () => ({ kind: 'image', bytes: pngBytes(8, 8) })): Promise<ImageCdn> {
  const sockets = new Set<Socket>()
  const held: Array<() => void> = []
  let calls = 0
  let inflight = 0
  let maxInflight = 0
  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0] as string
    const b = cdn.handler(path)
    res.on('close', () => inflight--)
    switch (b.kind) {
      case 'image':
        if (b.contentType === '') {
          res.writeHead(200, { 'content-length': b.bytes.length })
          res.end(b.bytes)
        } else if (b.chunked) {
          res.writeHead(200, { 'content-type': b.contentType ?? 'image/png' })
          res.write(b.bytes.subarray(0, Math.floor(b.bytes.length / 2)))
          res.end(b.bytes.subarray(Math.floor(b.bytes.length / 2)))
        } else {
          res.writeHead(200, { 'content-type': b.contentType ?? 'image/png', 'content-length': b.bytes.length })
          res.end(b.bytes)
        }
        return
      case 'status':
        res.writeHead(b.status, { 'content-type': 'text/plain' })
        res.end('no')
        return
      case 'redirect':
        res.writeHead(b.status ?? 302, { location: b.location })
        res.end()
        return
      case 'not-image':
        res.writeHead(200, { 'content-type': 'text/html' })
        res.end('<html>This content is no longer available.</html>')
        return
      case 'hang-mid-body':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': b.bytes.length })
        res.write(b.bytes.subarray(0, Math.floor(b.bytes.length / 2)))
        return
    }
  }
  const server = createServer((req, res) => {
    calls++
    inflight++
    maxInflight = Math.max(maxInflight, inflight)
    req.resume()
    const path = (req.url ?? '/').split('?')[0] as string
    if (cdn.hold === true || (typeof cdn.hold === 'function' && cdn.hold(path))) held.push(() => answer(req, res))
    else answer(req, res)
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const cdn: ImageCdn = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get calls() {
      return calls
    },
    get inflight() {
      return inflight
    },
    get maxInflight() {
      return maxInflight
    },
    handler,
    hold: false,
    release() {
      cdn.hold = false
      for (const go of held.splice(0)) go()
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  return cdn
}

/** a hexadecimal Unix time `secondsFromNow` away, as Discord's ex= */
export function exIn(secondsFromNow: number): string {
  return Math.floor(Date.now() / 1000 + secondsFromNow).toString(16)
}
