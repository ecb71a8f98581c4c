/**
 * The child side of the benchmark's tiny RPC over the fork() channel: a child announces
 * `{ ready, port }` once it listens, then answers `{ id, cmd, arg }` calls from the parent.
 * Every child also answers `memory` (after a full GC when run with --expose-gc).
 */
export type Handler = (arg: unknown) => unknown

export interface CallMessage {
  id: number
  cmd: string
  arg?: unknown
}

export type ReplyMessage = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string }

export interface ReadyMessage {
  ready: true
  port: number
}

export interface MemoryFacts {
  rss: number
  heapTotal: number
  heapUsed: number
  external: number
  arrayBuffers: number
}

function memory(): MemoryFacts {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) {
    gc()
    gc()
  }
  const m = process.memoryUsage()
  return { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
}

export function serveIpc(port: number, handlers: Record<string, Handler>): void {
  const send = process.send?.bind(process)
  if (send === undefined) throw new Error('bench servers run as fork() children of bench/run')
  const all: Record<string, Handler> = { memory, ...handlers }
  process.on('message', (raw: CallMessage) => {
    const handler = all[raw.cmd]
    Promise.resolve()
      .then(() => {
        if (handler === undefined) throw new Error(`unknown command ${raw.cmd}`)
        return handler(raw.arg)
      })
      .then(
        (value) => send({ id: raw.id, ok: true, value } satisfies ReplyMessage),
        (err: unknown) => send({ id: raw.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies ReplyMessage)
      )
  })
  // The parent went away (finished, or crashed): never linger as an orphan.
  process.on('disconnect', () => process.exit(0))
  // a normal exit, so --cpu-prof writes its profile
  process.on('SIGTERM', () => process.exit(0))
  send({ ready: true, port } satisfies ReadyMessage)
}

/** The JSON argument the parent passes as argv[2]. */
export function childArg<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T
}
