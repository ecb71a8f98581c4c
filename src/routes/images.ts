import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'
import { RangeNotSatisfiableError, TaskNotFoundError } from '../http/errors.js'
import { byteRange } from '../http/byte-range.js'
import { etagMatches } from './task-fetch.js'
import { TASK_ID_PATTERN } from '../tasks/task-id.js'
import type { ImageService } from '../images/image-service.js'
import type { ImageSigner, ImageSlot } from '../images/image-signing.js'
import type { OpenImage } from '../images/image-store.js'
import type { Ownership } from '../clients/ownership.js'

export const IMAGE_ROUTE = '/mj/image/:id'
export const IMAGE_N_ROUTE = '/mj/image/:id/:n'
/** an archived image never changes under its URL */
export const IMAGE_CACHE_CONTROL = 'private, max-age=31536000, immutable'
/** an image is there to be shown by frontends on other origins (`<img>`); the gateway's default is same-origin */
const EMBEDDABLE: Record<string, string> = { 'cross-origin-resource-policy': 'cross-origin' }

const params = {
  type: 'object',
  properties: { id: { type: 'string', pattern: TASK_ID_PATTERN }, n: { type: 'string', pattern: '^(0|[1-9][0-9]{0,2})$' } },
  required: ['id']
} as const

interface Deps {
  images: ImageService
  signer: ImageSigner
  clients: ClientKeyTable
  /** docs/tenancy.md §2: another client's task's images are an unknown task's */
  ownership: Ownership
}

type ImageRequest = FastifyRequest<{ Params: { id: string; n?: string } }>

const config = { signedImageUrl: true }

/** GET and HEAD /mj/image/:id and /mj/image/:id/:n (docs/images.md). */
export async function imageRoutes(app: FastifyInstance, { images, signer, clients, ownership }: Deps): Promise<void> {
  const handler = async (request: ImageRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const { id } = request.params
    const n: ImageSlot = request.params.n === undefined ? undefined : Number(request.params.n)
    const query = request.query as Record<string, unknown>
    if (query['sig'] !== undefined || query['exp'] !== undefined) {
      // a signed URL is the grant itself: forged, expired or another image's signature is an unknown image
      const exp = typeof query['exp'] === 'string' ? query['exp'] : undefined
      const sig = typeof query['sig'] === 'string' ? query['sig'] : undefined
      if (!signer.verify(id, n, exp, sig, Date.now())) throw new TaskNotFoundError(id)
    } else {
      await ownership.assertReadable(clientOf(request, clients), id, request.routeOptions.url ?? IMAGE_ROUTE)
    }
    return sendImage(request, reply, await images.open(id, n))
  }
  // HEAD declared, not derived: Fastify's derived HEAD would answer content-length 0 for a body not read
  for (const url of [IMAGE_ROUTE, IMAGE_N_ROUTE]) app.route({ method: ['GET', 'HEAD'], url, schema: { params }, config, handler })
}

/** The image from its store: etag, immutable caching, 304, a single Range (206/416), HEAD without the bytes. */
function sendImage(request: FastifyRequest, reply: FastifyReply, image: OpenImage): FastifyReply {
  const etag = `"${image.hash}"`
  if (etagMatches(request.headers['if-none-match'], etag)) {
    image.release()
    return reply.code(304).headers(EMBEDDABLE).header('etag', etag).header('cache-control', IMAGE_CACHE_CONTROL).send()
  }
  const ifRange = request.headers['if-range']
  const range = ifRange === undefined || ifRange === etag ? byteRange(request.headers.range, image.size) : ({ kind: 'full' } as const)
  if (range.kind === 'unsatisfiable') {
    image.release()
    reply.header('content-range', `bytes */${image.size}`)
    throw new RangeNotSatisfiableError(image.size)
  }
  let start = 0
  let end = image.size - 1
  reply
    .headers(EMBEDDABLE)
    .header('content-type', image.contentType)
    .header('etag', etag)
    .header('cache-control', IMAGE_CACHE_CONTROL)
    .header('accept-ranges', 'bytes')
  if (range.kind === 'partial') {
    ;({ start, end } = range)
    reply.code(206).header('content-range', `bytes ${start}-${end}/${image.size}`)
  }
  reply.header('content-length', String(end - start + 1))
  if (request.method === 'HEAD' || end < start) {
    image.release()
    return reply.send()
  }
  return reply.send(image.body(start, end))
}
