import type { FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the image routes: a signed URL may stand in for the client token there, and nowhere else */
    signedImageUrl?: boolean
  }
}

/**
 * The request is for an image route and carries a signature (`sig`): the client-token check lets it through, and
 * the route accepts it only if the signature verifies (else 404). An `<img>` tag cannot send a token.
 */
export function carriesImageSignature(request: FastifyRequest): boolean {
  if (request.routeOptions.config.signedImageUrl !== true) return false
  const query = request.query as Record<string, unknown> | undefined
  return query?.['sig'] !== undefined || query?.['exp'] !== undefined
}
