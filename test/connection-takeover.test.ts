/**
 * src/http/connection-takeover.ts against a bare node:http server (docs/push.md §10): on this Node a connection is
 * taken over and node:http forgets it; a connection in any other state is refused and left untouched.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { canTakeOver, takeOver } from '../src/http/connection-takeover.js'
import { openRaw } from './helpers/net.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void

async function serve(t: Test, handler: Handler): Promise<{ server: Server; port: number }> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { server, port: (server.address() as AddressInfo).port }
}

/** the request has been read in full (a GET's end comes right after its head) */
const complete = (req: IncomingMessage): Promise<void> => new Promise((resolve) => (req.complete ? resolve() : req.once('end', resolve).resume()))

const NODE_LISTENERS = /socketOnData|socketOnEnd|socketOnClose|socketOnDrain|socketOnError|socketOnTimeout|onSocketPause|onSocketResume|onServerResponseClose/

t.test('a complete HTTP/1.1 request: the connection is taken over and node:http forgets it', async (t) => {
  let left: string[] = []
  let parser: unknown = 'not looked at'
  const { server, port } = await serve(t, (req, res) => {
    void complete(req).then(() => {
      t.ok(canTakeOver(req, res), 'this Node lets the gateway take the connection over')
      res.writeHead(200, ['content-type', 'text/plain', 'connection', 'close'])
      res.flushHeaders()
      const socket = takeOver(req, res)
      parser = (socket as unknown as { parser: unknown }).parser
      left = socket.eventNames().flatMap((e) => socket.listeners(e).map((f) => f.name))
      socket.write('mine\n')
      // node:http no longer tracks it: closing all of its connections leaves this one open
      server.closeAllConnections()
      setTimeout(() => socket.end('still mine\n'), 50)
    })
  })
  const c = openRaw(port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n')
  const all = await c.closed
  t.match(all, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nmine\nstill mine\n$/, 'the head by node:http, the rest by the new owner')
  t.equal(parser, null, 'the parser is given back')
  t.notOk(left.some((name) => NODE_LISTENERS.test(name)), `none of node:http's listeners is left: ${left.join(', ')}`)
})

t.test('refused, and left to node:http, which answers as usual', async (t) => {
  const cases: Array<{ name: string; bytes: string; check: (req: IncomingMessage, res: ServerResponse) => Promise<boolean> }> = [
    { name: 'an HTTP/1.0 request', bytes: 'GET / HTTP/1.0\r\nhost: x\r\n\r\n', check: async (req, res) => (await complete(req), canTakeOver(req, res)) },
    {
      name: 'a request whose body is still arriving',
      bytes: 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nab',
      check: async (req, res) => {
        const answer = canTakeOver(req, res)
        req.resume()
        return answer
      }
    },
    {
      name: 'an answer whose head is written',
      bytes: 'GET / HTTP/1.1\r\nhost: x\r\n\r\n',
      check: async (req, res) => {
        await complete(req)
        res.writeHead(200)
        res.flushHeaders()
        return canTakeOver(req, res)
      }
    },
    {
      name: 'a request with another pipelined behind it',
      bytes: 'GET /first HTTP/1.1\r\nhost: x\r\n\r\nGET /second HTTP/1.1\r\nhost: x\r\n\r\n',
      check: async (req, res) => {
        await complete(req)
        await new Promise((resolve) => setImmediate(resolve))
        return req.url === '/second' ? false : canTakeOver(req, res)
      }
    },
    {
      name: 'a connection missing one of node:http’s listeners (another Node)',
      bytes: 'GET / HTTP/1.1\r\nhost: x\r\n\r\n',
      check: async (req, res) => {
        await complete(req)
        const drain = req.socket.listeners('drain').find((f) => f.name === 'bound socketOnDrain') as (...args: unknown[]) => void
        req.socket.removeListener('drain', drain)
        const answer = canTakeOver(req, res)
        req.socket.on('drain', drain)
        return answer
      }
    }
  ]
  for (const { name, bytes, check } of cases) {
    const { port } = await serve(t, (req, res) => {
      void check(req, res).then((taken) => res.end(taken ? 'taken\n' : 'kept\n'))
    })
    const c = openRaw(port, bytes)
    const got = await c.until(/\r\n\r\n(?:[0-9a-f]+\r\n)?kept\n/).catch(() => c.received())
    t.match(got, /kept\n/, name)
    t.notMatch(got, /taken/, `${name}: nothing taken`)
    c.socket.destroy()
  }
})
