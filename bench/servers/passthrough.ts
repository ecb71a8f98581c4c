/** The miss path's baseline: @fastify/http-proxy passing /mj/* through with the upstream key injected, nothing else. */
import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { childArg, serveIpc } from './ipc.js'

export interface PassthroughArg {
  upstream: string
  apiKey: string
}

const { upstream, apiKey } = childArg<PassthroughArg>()
const auth = `Bearer ${apiKey}`
const app = Fastify()
await app.register(httpProxy, {
  upstream,
  prefix: '/mj',
  rewritePrefix: '/mj',
  replyOptions: {
    rewriteRequestHeaders: (_req, headers) => ({ ...headers, authorization: auth })
  }
})
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
serveIpc(typeof address === 'object' && address !== null ? address.port : 0, {})
