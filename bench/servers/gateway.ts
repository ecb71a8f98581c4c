/** The gateway as `npm start` builds it, from the environment the parent chose; logs go to this process's stdout. */
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { childArg, serveIpc } from './ipc.js'

export interface GatewayArg {
  env: Record<string, string>
  /** false: the "metrics off" candidate, built without the http metrics hook */
  httpMetrics?: boolean
}

const arg = childArg<GatewayArg>()
const config = loadConfig({ ...arg.env, HOST: '127.0.0.1', PORT: '0' })
const app = await buildApp(config, arg.httpMetrics === false ? { httpMetrics: false } : {})
await app.listen({ host: config.host, port: 0 })
const address = app.server.address()
serveIpc(typeof address === 'object' && address !== null ? address.port : 0, {})
