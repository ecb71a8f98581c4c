import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Taking a connection away from node:http once its answer is a stream that stays open for minutes or hours (the
 * events routes, docs/push.md §10).
 *
 * Why: for every open response node:http holds the request and response objects, the connection's parser (a native
 * object), its state and a dozen bound listeners, and Fastify its request and reply. Measured with 10,000 idle
 * streams from a fresh process: 11.4 KB of RSS per stream through a bare node:http server, 6.8 KB once the server has
 * let go of the connection, 3.5 KB for a plain socket. An idle subscriber needs only its socket.
 *
 * How: Node has no public call for this. takeOver() does to the connection what node:http does to one that upgrades
 * (Upgrade or CONNECT: onParserExecuteCommon in Node's lib/_http_server.js): detach the response, remove the server's
 * listeners, hand the socket's reads back to JavaScript, free the parser. canTakeOver() checks first that every
 * internal this touches is there and as expected; where one is not (another Node version) or the connection is not in
 * the state this needs, nothing is touched and the answer stays with node:http, as heavy as before but correct.
 * test/connection-takeover.test.ts fails when this Node no longer lets the gateway take a connection over.
 */

/** node:http's parser object, as far as takeOver() uses it */
interface NodeParser {
  incoming: unknown
  _consumed: boolean
  finish(): unknown
  unconsume(): void
}

type FreeParser = (parser: NodeParser, req: IncomingMessage, socket: Socket) => void

/** a server connection's socket: node:http keeps its parser and current response on it */
interface ServerSocket extends Socket {
  parser?: NodeParser | null
  _httpMessage?: unknown
}

/**
 * node:http's own function for giving a parser back (lib/_http_common.js), as its upgrade path calls it
 * (process.getBuiltinModule is Node 20.16+: before it, no takeover)
 */
const freeParser = (process.getBuiltinModule?.('_http_common') as { freeParser?: FreeParser } | undefined)?.freeParser

type Listener = (...args: unknown[]) => void

/** the listeners node:http puts on every connection it serves (connectionListenerInternal in lib/_http_server.js) */
const SERVER_LISTENERS: ReadonlyArray<readonly [event: string, name: string]> = [
  ['data', 'bound socketOnData'],
  ['end', 'bound socketOnEnd'],
  ['close', 'bound socketOnClose'],
  ['drain', 'bound socketOnDrain'],
  ['error', 'socketOnError'],
  ['timeout', 'socketOnTimeout'],
  ['pause', 'onSocketPause'],
  ['resume', 'onSocketResume']
]

/** each of node:http's listeners, found exactly once; undefined when one is not */
function serverListeners(socket: Socket): Array<readonly [string, Listener]> | undefined {
  const found: Array<readonly [string, Listener]> = []
  for (const [event, name] of SERVER_LISTENERS) {
    const fns = (socket.listeners(event) as Listener[]).filter((f) => f.name === name)
    if (fns.length !== 1) return undefined
    found.push([event, fns[0] as Listener])
  }
  return found
}

/**
 * Whether takeOver() can have this connection: an HTTP/1.1 request read in full and the last one read on it (nothing
 * pipelined behind it), answered by `res`, whose head is not written yet, on a TCP connection whose parser reads the
 * socket itself, on a Node whose internals are as expected.
 */
export function canTakeOver(req: IncomingMessage, res: ServerResponse): boolean {
  const socket = req.socket as ServerSocket
  const parser = socket.parser
  return (
    freeParser !== undefined &&
    req.httpVersion === '1.1' &&
    req.complete &&
    !res.headersSent &&
    socket._httpMessage === res &&
    !socket.destroyed &&
    typeof parser?.finish === 'function' &&
    typeof parser.unconsume === 'function' &&
    parser._consumed &&
    parser.incoming === req &&
    serverListeners(socket) !== undefined
  )
}

/**
 * Takes the connection (canTakeOver() said it can, and the head is written): node:http and Fastify forget it, and
 * the socket is the caller's to write, end and destroy. Its reads are the caller's too: nothing listens yet. So is
 * node:http's idle timeout, which stays set on the socket: its 'timeout' event has no listener any more.
 */
export function takeOver(req: IncomingMessage, res: ServerResponse): Socket {
  const socket = req.socket as ServerSocket
  const parser = socket.parser as NodeParser
  res.detachSocket(socket)
  for (const [event, fn] of serverListeners(socket) as Array<readonly [string, Listener]>) socket.removeListener(event, fn)
  // the parser reads the socket's handle itself (node:http's "consume"): its reads go back to the socket
  parser.unconsume()
  parser._consumed = false
  parser.finish()
  ;(freeParser as FreeParser)(parser, req, socket)
  return socket
}
