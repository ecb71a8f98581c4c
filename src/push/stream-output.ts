import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyReply } from 'fastify'
import { canTakeOver, takeOver } from '../http/connection-takeover.js'

/** Where an events stream's bytes go once its head is sent (docs/push.md §10). */
export interface StreamOutput {
  write(chunk: string): void
  /**
   * what waits in the process for the client (beyond what the kernel's socket buffer took), as Node counts it: a
   * string by its length, so about bytes for task JSON
   */
  readonly waiting: number
  /** ends the response cleanly, then the connection */
  end(): void
  /** drops the connection */
  destroy(): void
  /** `listener` runs when the stream is over for the client: it closed the connection, or ended its side of it */
  onClose(listener: () => void): void
}

/** an events stream's own response headers (docs/push.md §1); the reply's headers (security, CORS, rate limit) win */
const STREAM_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' }
/**
 * framing of a stream the gateway writes itself (a taken-over connection): chunked, as node:http would frame it, and
 * the connection ends with the stream (node:http no longer serves it, so no second request can follow)
 */
const TAKEN_OVER_HEADERS = { connection: 'close', 'transfer-encoding': 'chunked' }

/**
 * Commits the stream: status 200 with the reply's headers, sent at once as one flat list, then the answer's
 * onResponse hooks (access line, request metrics: docs/push.md §9). Where it can (canTakeOver), the connection is then
 * taken from node:http and Fastify, so an open stream holds its socket and little else; where it cannot, node:http
 * keeps serving it.
 */
export function openStreamOutput(reply: FastifyReply): StreamOutput {
  const req = reply.request.raw
  const res = reply.raw
  const own = canTakeOver(req, res)
  const head: string[] = []
  // (a stream node:http keeps is framed by node:http, as for any answer)
  const headers = { ...STREAM_HEADERS, ...reply.getHeaders(), ...(own ? TAKEN_OVER_HEADERS : {}) }
  for (const [name, value] of Object.entries(headers)) head.push(name, String(value))
  res.writeHead(200, head)
  res.flushHeaders()
  answered(res, 'events stream opened')
  return own ? new SocketOutput(takeOver(req, res)) : new ResponseOutput(res)
}

/**
 * Runs the answer's onResponse hooks now: Fastify runs them when the response emits 'finish' or 'error', and an events
 * response never finishes while it serves. Used when the stream opens, and when the client left before it could.
 * Fastify's 'error' listener is called directly: emit('error') would throw if none were there.
 */
export function answered(res: ServerResponse, why: string): void {
  const err = new Error(why)
  for (const listener of res.listeners('error')) listener.call(res, err)
}

/** a stream node:http keeps serving (a connection canTakeOver() refused) */
class ResponseOutput implements StreamOutput {
  constructor(private readonly res: ServerResponse) {
    // Fastify's own error listener went with its hooks; a late error of the response must not be unhandled
    res.on('error', () => undefined)
  }

  write(chunk: string): void {
    this.res.write(chunk)
  }

  get waiting(): number {
    return this.res.writableLength
  }

  end(): void {
    if (!this.res.destroyed) this.res.end()
  }

  destroy(): void {
    this.res.destroy()
  }

  onClose(listener: () => void): void {
    this.res.once('close', listener)
  }
}

/**
 * What a client may send on a taken-over connection after its request, ignored, before it is dropped: an events
 * client sends nothing, but one may have pipelined a request or two before it saw `connection: close`.
 */
export const MAX_IGNORED_INPUT_BYTES = 16 * 1024

/** a chunked body's end */
const LAST_CHUNK = '0\r\n\r\n'

// listeners every taken-over socket shares (one function each, not one per socket: see docs/push.md §11)
function ignoreError(): void {
  // a write to a connection the client dropped fails with an error, and 'close' follows: that is the signal
}
function destroySocket(this: Socket): void {
  this.destroy()
}

/** a taken-over connection: the gateway frames the chunks itself (TAKEN_OVER_HEADERS) */
class SocketOutput implements StreamOutput {
  constructor(private readonly socket: Socket) {
    socket.on('error', ignoreError)
    // node:http's idle timeout (connectionTimeout) stays set: heartbeats keep a reading client's stream alive, and a
    // connection that takes nothing for that long (a client that stopped reading, even after its stream ended) goes,
    // as node:http would let it go
    socket.on('timeout', destroySocket)
    let ignored = 0
    socket.on('data', (chunk: Buffer) => {
      ignored += chunk.length
      if (ignored > MAX_IGNORED_INPUT_BYTES) socket.destroy()
    })
  }

  write(chunk: string): void {
    this.socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`)
  }

  get waiting(): number {
    return this.socket.writableLength
  }

  end(): void {
    // the last chunk, then the connection: destroyed once written, so a client that never closes its side cannot hold it
    if (!this.socket.writable) return
    this.socket.once('finish', destroySocket)
    this.socket.end(LAST_CHUNK)
  }

  destroy(): void {
    this.socket.destroy()
  }

  /** also when the client ends its side: the stream's owner then ends ours, as node:http would */
  onClose(listener: () => void): void {
    this.socket.once('close', listener)
    this.socket.once('end', listener)
  }
}
