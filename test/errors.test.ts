/**
 * The one error handler (docs/errors.md §1): Fastify's error shape, and a 5xx that is not ours never shows its message.
 */
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { UpstreamTimeoutError, errorBody, installErrorHandler } from '../src/http/errors.js'
import { get } from './helpers/net.js'

const SECRET = 'internal-SECRET-detail'

t.test('docs/errors.md §2 errors: ours keep their status and code; a foreign 5xx is a bare 500; odd statuses are 500', async (t) => {
  let logs = ''
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      logs += c.toString()
      cb()
    }
  })
  const app = Fastify({ logger: { level: 'warn', stream } })
  installErrorHandler(app)
  app.get('/ours', async () => {
    throw new UpstreamTimeoutError(300)
  })
  app.get('/foreign', async () => {
    throw new Error(`db password ${SECRET}`)
  })
  app.get('/teapot', async () => {
    throw Object.assign(new Error('short and stout'), { statusCode: 418 })
  })
  app.get('/weird', async () => {
    throw Object.assign(new Error(`weird ${SECRET}`), { statusCode: 302 })
  })
  app.get('/uncoded-5xx', async () => {
    throw Object.assign(new Error(`down ${SECRET}`), { statusCode: 503 })
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const ours = await get(`${base}/ours`)
  t.equal(ours.status, 504)
  t.same(ours.json(), { statusCode: 504, code: 'MJGW_UPSTREAM_TIMEOUT', error: 'Gateway Timeout', message: 'upstream did not answer within 300 ms' })

  for (const path of ['/foreign', '/weird', '/uncoded-5xx']) {
    const res = await get(`${base}${path}`)
    t.equal(res.status, 500, path)
    t.same(res.json(), { statusCode: 500, code: 'MJGW_INTERNAL', error: 'Internal Server Error', message: 'internal error' })
  }
  t.match(logs, /unhandled error/, 'the detail goes to the log, not the client')

  const teapot = await get(`${base}/teapot`)
  t.equal(teapot.status, 418)
  t.same(teapot.json(), { statusCode: 418, code: 'HTTP_418', error: "I'm a Teapot", message: 'short and stout' })

  const missing = await get(`${base}/nope`)
  t.same(missing.json(), { statusCode: 404, code: 'MJGW_NOT_FOUND', error: 'Not Found', message: 'no such route (GET)' })
})

t.test('errorBody names a status Node does not know as Error', async (t) => {
  t.same(errorBody(599, 'X', 'm'), { statusCode: 599, code: 'X', error: 'Error', message: 'm' }, 'an unnamed status')
})
