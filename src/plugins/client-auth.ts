import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'
import { UnauthorizedError } from '../http/errors.js'
import { carriesImageSignature } from '../images/image-access.js'

export interface AuthPluginOptions {
  table: ClientKeyTable
}

/**
 * Client tokens on every route of the scope it is registered in. It runs in preParsing, after the rate limit
 * (onRequest), so refused requests still count against their IP, and before the body is read and before any
 * cache or upstream work.
 */
async function authPlugin(app: FastifyInstance, { table }: AuthPluginOptions): Promise<void> {
  app.decorateRequest('mjClient', null)
  if (!table.enabled) return
  app.addHook('preParsing', (request, _reply, _payload, done) => {
    // a signed image URL stands in for the token; the image route checks the signature (docs/images.md)
    done(clientOf(request, table).authorized || carriesImageSignature(request) ? undefined : new UnauthorizedError())
  })
}

export default fp(authPlugin, { name: 'mj-auth', fastify: '5.x' })
