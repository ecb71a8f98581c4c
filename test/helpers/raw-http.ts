/**
 * One request written byte for byte on a fresh socket, and the answer parsed by hand: for requests no HTTP client
 * library sends (no Host, an unknown Expect, a malformed head) and answers no library would hand back as they are.
 */
import { connect } from 'node:net'

export interface RawAnswer {
  status: number
  /** lowercase names; a repeated header keeps its last value */
  headers: Record<string, string>
  body: string
  /** the whole answer as received */
  raw: string
}

/** Writes `text` to 127.0.0.1:port and reads until the server closes the socket or `timeoutMs` passes. */
export function rawExchange(port: number, text: string | Buffer, timeoutMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => (received += chunk))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      const head = received.split('\r\n\r\n', 1)[0] ?? ''
      const lines = head.split('\r\n')
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1])
      if (!Number.isFinite(status)) return reject(new Error(`no HTTP answer: ${JSON.stringify(received.slice(0, 200))}`))
      const headers: Record<string, string> = {}
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status, headers, body: received.slice(head.length + 4), raw: received })
    })
    socket.write(text)
  })
}
