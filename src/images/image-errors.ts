import createError from '@fastify/error'

/** The image routes' own answers (docs/images.md §4); the upstream's failures keep their codes from src/upstream/failures.ts. */
export const ImageGoneError = createError('MJGW_IMAGE_GONE', 'image not archived and its link no longer answers', 404)
export const ImageNotFoundError = createError('MJGW_IMAGE_NOT_FOUND', 'task %s has no such finished image', 404)
export const ImageStoreError = createError('MJGW_IMAGE_STORE_ERROR', 'the image archive cannot store images right now', 503)
export const RangeNotSatisfiableError = createError('MJGW_RANGE_NOT_SATISFIABLE', 'range not satisfiable (image is %s bytes)', 416)
