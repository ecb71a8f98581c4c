/**
 * A scriptable image CDN on 127.0.0.1: serves PNG-like bytes at /img/{name}, counts requests, and can
 * redirect, refuse, hang mid-body, send something that is not an image, or send more than it declared.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pngBytes } from '../../src/demo/png.js'

export { pngBytes }

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
