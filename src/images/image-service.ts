import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import type { TaskService } from '../tasks/fetch-service.js'
import {
  ImageGoneError,
  ImageNotFoundError,
  ImageStoreError,
  TaskNotFoundError,
  UpstreamBadResponseError,
  UpstreamHttpError,
  UpstreamTimeoutError,
  UpstreamUnreachableError
} from '../http/errors.js'
import { CdnFetcher, failureOf } from './cdn-fetch.js'
import type { ImageArchiver } from './image-archiver.js'
import type { ImageSlot } from './image-signing.js'
import type { ImageStore, OpenImage } from './image-store.js'
import { linkAt, taskImages } from './task-images.js'

/**
 * GET /mj/image/:id[/:n] behind the access checks: the archived copy, or else the task's link (the task as the
 * fetch route would answer it: cache, shared tier or upstream) archived on the way, while it lives.
 */
export class ImageService {
  constructor(
    private readonly store: ImageStore,
    private readonly archiver: ImageArchiver,
    private readonly tasks: TaskService,
    private readonly metrics: GatewayMetrics,
    /** the CDN fetch time limit, named in a timeout's message */
    private readonly timeoutMs: number
  ) {}

  async open(id: string, n: ImageSlot): Promise<OpenImage> {
    const key = this.archiver.key(id, n)
    const archived = await this.store.open(key)
    if (archived !== undefined) {
      this.metrics.imageRequests.inc({ result: 'hit' })
      return archived
    }
    const link = await this.linkOf(id, n)
    try {
      if (!CdnFetcher.alive(link, Date.now())) throw new ImageGoneError()
      await this.archiver.archive(key, link)
    } catch (err) {
      throw this.requestError(err)
    }
    const image = await this.store.open(key)
    // stored, then gone before it could be read (deleted by hand, or evicted by another process sharing DATA_DIR)
    /* c8 ignore next -- a race between two awaits that a test cannot order */
    if (image === undefined) throw new ImageStoreError()
    this.metrics.imageRequests.inc({ result: 'fetched' })
    return image
  }

  private async linkOf(id: string, n: ImageSlot): Promise<string> {
    const served = await this.tasks.fetch(id)
    if (served.kind === 'answer') throw served.answer.status === 404 ? new TaskNotFoundError(id) : new UpstreamHttpError(served.answer.status)
    const images = taskImages(served.body)
    // only a finished task's image is kept: a running task's link is a preview that will change
    const link = images !== undefined && images.status === 'SUCCESS' ? linkAt(images, n) : ''
    if (link === '') throw new ImageNotFoundError(id)
    return link
  }

  private requestError(err: unknown): Error {
    if (err instanceof ImageGoneError) {
      this.metrics.imageRequests.inc({ result: 'gone' })
      return err
    }
    const failure = failureOf(err)
    switch (failure) {
      case 'gone':
        this.metrics.imageRequests.inc({ result: 'gone' })
        return new ImageGoneError()
      case 'not_allowed':
      case 'too_large':
      case 'not_image':
        return new UpstreamBadResponseError((err as Error).message)
      case 'timeout':
        return new UpstreamTimeoutError(this.timeoutMs)
      case 'store_error':
        return new ImageStoreError()
      case 'error':
        return new UpstreamUnreachableError((err as Error).message)
    }
  }
}
