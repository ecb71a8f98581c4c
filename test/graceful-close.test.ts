/**
 * Closing with a request in flight: its answer says `connection: close`, so the client's keep-alive socket does not
 * hold the server open after it (server.close() would wait for the client's idle timeout, and the graceful exit's
 * deadline would kill the process). Deterministic: the upstream holds its answer until the close has begun.
 */
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { taskBody } from '../src/demo/simulated-upstream.js'

const KEY = 'sk-close-SECRET-12'

for (const lane of ['on', 'off']) {
  t.test(`HIT_LANE=${lane}: an answer finished after close began carries connection: close, and close does not wait for the socket`, async (t) => {
    const held: ServerResponse[] = []
    let arrived: () => void = () => undefined
    const reached = new Promise<void>((resolve) => (arrived = resolve))
    const upstream = createServer((_req: IncomingMessage, res: ServerResponse) => {
      held.push(res)
      arrived()
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => upstream.close(() => resolve())))
    const config = loadConfig({
      UPSTREAM_API_KEY: KEY,
      UPSTREAM_BASE_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      LOG_LEVEL: 'silent',
      HIT_LANE: lane
    })
    const app = await buildApp(config, { logStream: { write: () => true } as unknown as NodeJS.WritableStream })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port

    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const answer = new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/mj/task/CLOSE1/fetch', agent }, (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }))
      })
      req.on('error', reject)
      req.end()
    })
    await reached
    const started = Date.now()
    const closed = app.close()
    // preClose has run once the server stops listening
    while (app.server.listening) await new Promise((r) => setTimeout(r, 5))
    const res = held[0] as ServerResponse
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(taskBody('CLOSE1', 'SUCCESS')))
    t.same(await answer, { status: 200, connection: 'close' })
    await closed
    t.ok(Date.now() - started < 5000, `closed in ${Date.now() - started} ms, without waiting for the keep-alive socket`)
  })
}
