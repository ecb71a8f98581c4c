import pLimit, { type LimitFunction } from 'p-limit'
import type { FastifyBaseLogger } from 'fastify'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { CdnFetcher, failureOf, PERMANENT } from './cdn-fetch.js'
import type { ImageSlot } from './image-signing.js'
import type { ImageStore, StoredImage } from './image-store.js'
import { archivable, taskImages, type TaskImages } from './task-images.js'

/** first retry after this, doubling each time up to RETRY_MAX_MS, while the link lives */
const RETRY_FIRST_MS = 1000
const RETRY_MAX_MS = 300_000
const MAX_ATTEMPTS = 12

export interface ArchiverOptions {
  store: ImageStore
  fetcher: CdnFetcher
  metrics: GatewayMetrics
  /** IMAGE_FETCH_CONCURRENCY: background downloads at once */
  concurrency: number
  /** keeps archives of gateways with different upstream keys apart (the upstream key's fingerprint) */
  namespace: string
  log: FastifyBaseLogger
}

/**
 * Puts task images into the store: in the background when the gateway first sees a task SUCCESS (a bounded queue,
 * retried with backoff while the link lives), or at once for a request. One download per image at a time,
 * whoever asks (single-flight).
 */
export class ImageArchiver {
  private readonly flights = new Map<string, Promise<StoredImage>>()
  private readonly queued = new Set<string>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly limit: LimitFunction
  private closed = false

  constructor(private readonly opts: ArchiverOptions) {
    this.limit = pLimit(opts.concurrency)
  }

  key(id: string, n: ImageSlot): string {
    return n === undefined ? `${this.opts.namespace}/${id}` : `${this.opts.namespace}/${id}/${n}`
  }

  /** A task body the gateway just took in (fetch miss path, list-by-condition, shared tier): archive its images if it succeeded. */
  sawTask(body: Buffer): void {
    // cheap test first: most bodies the miss path sees are not finished
    if (!body.includes('SUCCESS')) return
    const images = taskImages(body)
    for (const { n, url } of archivable(images)) this.background(this.key((images as TaskImages).id, n), url, 0)
  }

  /**
   * The single download of key's image from url, started now if none is under way and the image is not stored
   * (a download may have ended while the caller looked the task up); rejects with what went wrong.
   */
  archive(key: string, url: string): Promise<void> {
    let flight = this.flights.get(key)
    if (flight === undefined) {
      if (this.opts.store.has(key)) return Promise.resolve()
      flight = this.download(key, url).finally(() => this.flights.delete(key))
      this.flights.set(key, flight)
    }
    return flight.then(() => undefined)
  }

  close(): void {
    this.closed = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.limit.clearQueue()
    this.queued.clear()
  }

  private background(key: string, url: string, attempt: number): void {
    if (this.closed || this.queued.has(key) || this.flights.has(key) || this.opts.store.has(key)) return
    this.queued.add(key)
    void this.limit(async () => {
      this.queued.delete(key)
      // (archived meanwhile by a request for it: archive() finds it stored)
      try {
        await this.archive(key, url)
      } catch (err) {
        this.retryLater(key, url, attempt, err)
      }
    })
  }

  private retryLater(key: string, url: string, attempt: number, err: unknown): void {
    if (PERMANENT.has(failureOf(err)) || attempt + 1 >= MAX_ATTEMPTS) return
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt) * (0.75 + Math.random() / 2)
    if (!CdnFetcher.alive(url, Date.now() + delay)) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.background(key, url, attempt + 1)
    }, delay)
    timer.unref()
    this.timers.add(timer)
  }

  private async download(key: string, url: string): Promise<StoredImage> {
    try {
      const fetched = await this.opts.fetcher.fetch(url, Date.now())
      const stored = await this.opts.store.put(key, fetched.body, fetched.contentType)
      this.opts.metrics.imagesArchived.inc({ outcome: 'ok' })
      return stored
    } catch (err) {
      const outcome = failureOf(err)
      this.opts.metrics.imagesArchived.inc({ outcome })
      // the host only: a CDN link carries its own signature, and the key names a task
      this.opts.log.warn({ outcome, host: hostOf(url), reason: (err as Error).message }, 'image not archived')
      throw err
    }
  }
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname
  } catch {
    return undefined
  }
}
