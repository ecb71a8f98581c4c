/** A minimal server-sent events subscriber for the push scenario: every event with the time it arrived. */
import { request, type ClientRequest } from 'node:http'

export interface ArrivedEvent {
  event: string
  data: string
  /** Date.now() when its last line arrived */
  at: number
}

export interface Subscriber {
  events: ArrivedEvent[]
  ended: Promise<void>
  /** the first event arrived */
  opened: Promise<void>
  close(): void
}

export function subscribe(url: string, token: string): Subscriber {
  const events: ArrivedEvent[] = []
  let req: ClientRequest | undefined
  let onFirst: () => void = () => undefined
  const opened = new Promise<void>((resolve) => (onFirst = resolve))
  const ended = new Promise<void>((resolve, reject) => {
    req = request(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` }, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`subscribe: HTTP ${res.statusCode}`))
        res.resume()
        return
      }
      let buffer = ''
      let event = 'message'
      let data = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        let nl: number
        while ((nl = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, nl)
          buffer = buffer.slice(nl + 1)
          if (line === '') {
            if (data !== '') {
              events.push({ event, data: data.slice(0, -1), at: Date.now() })
              if (events.length === 1) onFirst()
            }
            event = 'message'
            data = ''
          } else if (line.startsWith('event: ')) event = line.slice(7)
          else if (line.startsWith('data: ')) data += `${line.slice(6)}\n`
        }
      })
      res.on('close', () => resolve())
    })
    req.on('error', reject)
    req.end()
  })
  ended.catch(() => onFirst())
  return { events, ended, opened, close: () => req?.destroy() }
}
