/**
 * The pieces the Fastify routes and the hit lane share: the client address (TRUST_PROXY), the access line,
 * and the stdout log destination.
 */
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t from 'tap'
import { AccessLog, requestIds } from '../src/logging/access-log.js'
import { clientHost, clientIp, trustFunction } from '../src/http/client-address.js'
import { stdoutLog } from '../src/logging/log-stream.js'

/** the server side of one request carrying these headers */
async function incoming(headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      res.end()
      server.close()
      resolve(req)
    })
    server.listen(0, '127.0.0.1', () => {
      const req = httpRequest({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, headers, agent: false }, (res) => res.resume())
      req.on('error', reject)
      req.end()
    })
  })
}

/** the server side of an HTTP/1.0 request without a host header */
async function hostless(): Promise<IncomingMessage> {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      res.end()
      server.close()
      resolve(req)
    })
    server.listen(0, '127.0.0.1', () => {
      const socket = connect((server.address() as AddressInfo).port, '127.0.0.1', () => socket.end('GET / HTTP/1.0\r\n\r\n'))
      socket.on('data', () => undefined)
      socket.on('error', () => undefined)
    })
  })
}

t.test('TRUST_PROXY as one function: off, all, a hop count, a list', async (t) => {
  t.equal(trustFunction(false), false)
  const all = trustFunction(true) as (a: string, i: number) => boolean
  t.equal(all('198.51.100.7', 5), true)
  const hops = trustFunction(2) as (a: string, i: number) => boolean
  t.same([hops('x', 0), hops('x', 1), hops('x', 2)], [true, true, false])
  const list = trustFunction('127.0.0.1, 10.0.0.0/8') as (a: string, i: number) => boolean
  t.same([list('127.0.0.1', 0), list('10.1.2.3', 1), list('198.51.100.7', 0)], [true, true, false])
})

t.test('client address and host, as Fastify works them out', async (t) => {
  const req = await incoming({ 'x-forwarded-for': '203.0.113.9, 198.51.100.4', 'x-forwarded-host': 'a.example, b.example', host: 'gw.local' })
  t.equal(clientIp(req, false), '127.0.0.1', 'no proxy trusted: the socket address')
  t.equal(clientHost(req, false), 'gw.local', 'no proxy trusted: the host header')
  const loopback = trustFunction('127.0.0.1') as (a: string, i: number) => boolean
  t.equal(clientIp(req, loopback), '198.51.100.4', 'the nearest untrusted hop')
  t.equal(clientIp(req, trustFunction(true)), '203.0.113.9', 'every hop trusted: the first')
  t.equal(clientHost(req, loopback), 'b.example', 'the last x-forwarded-host of a trusted proxy')
  t.equal(clientHost(req, trustFunction('10.0.0.1')), 'gw.local', 'x-forwarded-host from an untrusted peer is ignored')
  const single = await incoming({ 'x-forwarded-host': ' one.example ' })
  t.equal(clientHost(single, loopback), 'one.example')
  t.equal(clientHost(await hostless(), false), '', 'HTTP/1.0 without a host header')
})

t.test('the access line: one JSON object per line, fields left out when unknown', async (t) => {
  const lines: string[] = []
  const next = requestIds()
  const log = new AccessLog({ write: (l: string) => lines.push(l) }, false, next)
  const req = await incoming({})
  log.write(req, 200, { authorized: true, name: 'web', owner: 'web', all: false, label: 'web' }, 1.5)
  log.write(req, 401, null, 0.25, 'req-x')
  req.socket.destroy()
  t.equal(lines.length, 2)
  t.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')))
  const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(a, { level: 30, pid: process.pid, reqId: 'req-1', req: { method: 'GET', url: '/', remoteAddress: '127.0.0.1' }, res: { statusCode: 200, client: 'web' }, responseTime: 1.5, msg: 'request completed' })
  t.match(b, { reqId: 'req-x', res: { statusCode: 401 } })
  t.notOk('client' in (b?.['res'] as object), 'no client name when none')
  t.equal(next(), 'req-2', 'the sequence goes on')
})

t.test('stdout has one log destination per process', async (t) => {
  t.equal(stdoutLog(), stdoutLog())
})
