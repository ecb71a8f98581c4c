import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { CdnFetcher } from './cdn-fetch.js'
import { DiskImageStore } from './disk-store.js'
import { ImageArchiver } from './image-archiver.js'
import { ImageSigner } from './image-signing.js'
import type { ImageStore } from './image-store.js'
import { TaskRewriter } from './task-rewrite.js'
import { UnavailableImageStore } from './unavailable-store.js'

/** The image archive's parts as buildApp wires them (docs/images.md). */
export interface ImageArchive {
  store: ImageStore
  fetcher: CdnFetcher
  archiver: ImageArchiver
  signer: ImageSigner
  /** set when IMAGE_REWRITE=on */
  rewriter: TaskRewriter | undefined
  close(): Promise<void>
}

/** The store under DATA_DIR/images; a directory that cannot be used leaves the gateway serving, without an archive. */
function openStore(config: Config, log: FastifyBaseLogger): ImageStore {
  const dir = join(config.dataDir, 'images')
  try {
    return new DiskImageStore(dir, config.images.storeMaxBytes)
  } catch (err) {
    log.error({ dir, reason: (err as Error).message }, 'image archive unavailable (DATA_DIR): images are not archived')
    return new UnavailableImageStore()
  }
}

export function createImageArchive(config: Config, metrics: GatewayMetrics, log: FastifyBaseLogger): ImageArchive {
  const store = openStore(config, log)
  const fetcher = new CdnFetcher({ hosts: config.images.hosts, maxBytes: config.images.maxBytes, idleTimeoutMs: config.upstream.timeoutMs })
  const archiver = new ImageArchiver({
    store,
    fetcher,
    metrics,
    concurrency: config.images.fetchConcurrency,
    namespace: config.upstream.keyFingerprint,
    log
  })
  const signer = new ImageSigner(config.images.signingKey, config.images.signedUrlTtlSeconds)
  const rewriter = config.images.rewrite ? new TaskRewriter(signer, config.publicUrl) : undefined
  return {
    store,
    fetcher,
    archiver,
    signer,
    rewriter,
    async close() {
      archiver.close()
      await fetcher.close()
      await store.close()
    }
  }
}
