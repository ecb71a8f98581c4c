import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

/** A redis-server child process of the test's own, on a free port: it can be killed and started again. */
export interface RedisServer {
  readonly port: number
  /** redis://127.0.0.1:{port} (with the password, when one was asked for) */
  readonly url: string
  /** an inspection client (lazy; closed by stop and teardown) */
  admin(): Redis
  /** SIGKILL: the crash an operator fears */
  kill(): Promise<void>
  /** starts it again on the same port, empty */
  start(): Promise<void>
  /** SIGSTOP: a Redis that hangs (socket open, no answers) */
  pause(): void
  /** SIGCONT after pause() */
  resume(): void
}

interface Teardown {
  teardown(fn: () => unknown): void
}

async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** true once something on the port answers RESP (PONG, or NOAUTH when a password is set) */
async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.setTimeout(500)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (d) => {
      socket.destroy()
      resolve(/^[+-]/.test(d.toString()))
    })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
  })
}

export async function startRedisServer(t: Teardown, opts: { password?: string } = {}): Promise<RedisServer> {
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
  if (opts.password !== undefined) args.push('--requirepass', opts.password)
  const auth = opts.password === undefined ? '' : `:${encodeURIComponent(opts.password)}@`
  let child: ChildProcess | undefined
  let admin: Redis | undefined

  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', args, { stdio: 'ignore' })
    child = proc
    proc.once('exit', () => {
      if (child === proc) child = undefined
    })
    for (let i = 0; i < 100; i++) {
      if (await answers(port)) return
      if (child !== proc) throw new Error('redis-server exited at start')
      await sleep(50)
    }
    throw new Error(`redis-server did not answer on port ${port}`)
  }

  const kill = async (): Promise<void> => {
    const proc = child
    if (proc === undefined) return
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await exited
  }

  await start()
  t.teardown(async () => {
    admin?.disconnect()
    await kill()
  })
  return {
    port,
    url: `redis://${auth}127.0.0.1:${port}`,
    admin: () => {
      if (admin === undefined) {
        admin = new Redis(port, '127.0.0.1', { ...(opts.password === undefined ? {} : { password: opts.password }), maxRetriesPerRequest: 1 })
        admin.on('error', () => undefined)
      }
      return admin
    },
    kill,
    start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT')
  }
}
