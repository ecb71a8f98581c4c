/**
 * A server-sent events client over a real socket (node:http), for the push tests: it parses the stream as a browser's
 * EventSource does (event, id, data lines; comments kept apart) and lets a test wait for events.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { waitFor } from './net.js'

export interface SseEvent {
  event: string
  id: string | undefined
  data: string
}

export interface SseStream {
  status: number
  headers: IncomingHttpHeaders
  /** the whole body when it was not a stream (an error answer) */
  body: string
  events: SseEvent[]
  comments: string[]
  /** the server ended the stream (or the socket closed) */
  readonly ended: boolean
  /** resolves once `n` events have arrived (rejects after timeoutMs) */
  waitForEvents(n: number, timeoutMs?: number): Promise<SseEvent[]>
  waitForEnd(timeoutMs?: number): Promise<void>
  close(): void
  /** the raw response (to pause reading) */
  res: IncomingMessage
}

/** Opens `url` and resolves once the response head arrived. */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
      const stream: SseStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: '',
        events: [],
        comments: [],
        ended: false,
        res,
        waitForEvents: async (n, timeoutMs = 10_000) => {
          await waitFor(() => stream.events.length >= n || (stream.ended && stream.events.length < n ? fail(n) : false), timeoutMs)
          return stream.events
        },
        waitForEnd: (timeoutMs = 10_000) => waitFor(() => stream.ended, timeoutMs),
        close: () => req.destroy()
      }
      const fail = (n: number): never => {
        throw new Error(`stream ended after ${stream.events.length} events, expected ${n}: ${JSON.stringify(stream.events.map((e) => e.event))}`)
      }
      let buffer = ''
      let current: SseEvent = { event: 'message', id: undefined, data: '' }
      let hasData = false
      const onLine = (line: string): void => {
        if (line === '') {
          if (hasData) stream.events.push({ ...current, data: current.data.replace(/\n$/, '') })
          current = { event: 'message', id: current.id, data: '' }
          hasData = false
          return
        }
        if (line.startsWith(':')) {
          stream.comments.push(line)
          return
        }
        const colon = line.indexOf(':')
        const field = colon === -1 ? line : line.slice(0, colon)
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') current.event = value
        else if (field === 'id') current.id = value
        else if (field === 'data') {
          current.data += `${value}\n`
          hasData = true
        }
      }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        stream.body += chunk
        buffer += chunk
        let nl: number
        while ((nl = buffer.indexOf('\n')) !== -1) {
          onLine(buffer.slice(0, nl))
          buffer = buffer.slice(nl + 1)
        }
      })
      const end = (): void => {
        ;(stream as { ended: boolean }).ended = true
      }
      res.on('end', end)
      res.on('close', end)
      res.on('error', end)
      resolve(stream)
    })
    req.on('error', reject)
    req.end()
  })
}
