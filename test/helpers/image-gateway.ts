/**
 * A gateway in front of the fake upstream whose SUCCESS tasks link their images to a local image CDN
 * (IMAGE_HOSTS=127.0.0.1), for the image archive tests.
 */
import type { Test } from 'tap'
import { idFromUrl, taskBody } from '../../src/demo/simulated-upstream.js'
import { startGateway, type Gateway } from './gateway.js'
import { exIn, pngBytes, startImageCdn, type ImageCdn } from './image-cdn.js'
import { send, waitFor } from './net.js'
import { sample } from './gateway.js'

export interface BinaryResult {
  status: number
  headers: Record<string, string>
  body: Buffer
  json(): Record<string, unknown>
}

/** the tests' one HTTP client (helpers/net.ts), the body as bytes */
export async function getBinary(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<BinaryResult> {
  const res = await send(method, url, { headers })
  return { status: res.status, headers: res.headers, body: res.bytes, json: () => res.json() as Record<string, unknown> }
}

export interface ImageGateway {
  gw: Gateway
  cdn: ImageCdn
  /** the bytes the CDN serves for a name (the task id, or `{id}-{n}`) */
  bytes(name: string): Buffer
  /** per task id: fields merged into its SUCCESS body */
  tasks: Map<string, Record<string, unknown>>
  /** the default imageUrl of task id, alive for `seconds` */
  link(id: string, seconds?: number, name?: string): string
  /** GET (or another method) of a gateway path, the body as bytes */
  image(path: string, headers?: Record<string, string>, method?: string): Promise<BinaryResult>
  /** waits until the archive holds `n` images in all (mj_gateway_images_archived_total{outcome="ok"}) */
  archived(n: number): Promise<void>
}

export async function startImageGateway(t: Test, env: Record<string, string> = {}): Promise<ImageGateway> {
  const cache = new Map<string, Buffer>()
  const bytes = (name: string): Buffer => {
    let b = cache.get(name)
    if (b === undefined) {
      b = pngBytes(16, 16, [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 1_000_003, 7))
      cache.set(name, b)
    }
    return b
  }
  const cdn = await startImageCdn((path) => ({ kind: 'image', bytes: bytes(decodeURIComponent(path.replace(/^\/img\//, '').replace(/\.png$/, ''))) }))
  t.teardown(() => cdn.close())
  const link = (id: string, seconds = 86_400, name = id): string => `${cdn.url}/img/${name}.png?ex=${exIn(seconds)}&is=0&hm=abc&`
  const tasks = new Map<string, Record<string, unknown>>()
  const gw = await startGateway(t, { IMAGE_HOSTS: '127.0.0.1', ...env })
  gw.upstream.setHandler((req) => {
    const id = idFromUrl(req.url)
    if (id === undefined || req.method !== 'GET') return { kind: 'json', status: 404, body: { code: 404 } }
    return { kind: 'json', body: taskBody(id, 'SUCCESS', { imageUrl: link(id), ...tasks.get(id) }) }
  })
  return {
    gw,
    cdn,
    bytes,
    tasks,
    link,
    image: (path, headers, method) => getBinary(`${gw.url}${path}`, headers, method),
    archived: (n) =>
      waitFor(async () => (sample(await gw.metrics(), 'mj_gateway_images_archived_total', { outcome: 'ok' }) ?? 0) >= n, 10_000)
  }
}
