/** The parent side: each candidate server runs in a fork()ed process of its own, driven over IPC. */
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { trace } from './trace.js'
import { pin, type Role } from './cpus.js'
import type { CallMessage, ReadyMessage, ReplyMessage } from '../servers/ipc.js'

// generous: on a shared machine under load, several children starting at once on one pinned core take a while
const READY_TIMEOUT_MS = 90_000
const STDERR_TAIL = 4096

export interface ForkOptions {
  /** extra node flags, e.g. --cpu-prof */
  execArgv?: string[]
  /** what the child gets as argv[2] (JSON) */
  arg?: unknown
  /** which CPUs it runs on (lib/cpus.ts); default: a server under test */
  role?: Role
}

export class Child {
  private nextId = 1
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  private stderr = ''
  /** set when the process ended; a candidate that exits during a run has crashed */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  port = 0

  private constructor(
    readonly name: string,
    private readonly proc: ChildProcess
  ) {
    proc.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-STDERR_TAIL)
    })
    proc.on('message', (msg: ReplyMessage | ReadyMessage) => {
      if ('ready' in msg) return
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      if (msg.ok) p.resolve(msg.value)
      else p.reject(new Error(`${this.name}: ${msg.error}`))
    })
    proc.on('exit', (code, signal) => {
      this.exit = { code, signal }
      for (const p of this.pending.values()) p.reject(new Error(`${this.name} exited (${code ?? signal})${this.tail()}`))
      this.pending.clear()
    })
  }

  /**
   * Starts `dist/bench/servers/<entry>.js` (or, with `root`, that file in another built checkout) and resolves
   * once it listens. Its stdout (logs) goes to /dev/null.
   */
  static start(name: string, entry: string, opts: ForkOptions & { root?: string } = {}): Promise<Child> {
    const file = opts.root === undefined ? new URL(`../servers/${entry}.js`, import.meta.url) : new URL(`dist/bench/servers/${entry}.js`, pathToFileURL(`${opts.root}/`))
    const proc = fork(file, [JSON.stringify(opts.arg ?? {})], {
      execArgv: ['--expose-gc', ...(opts.execArgv ?? [])],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production' }
    })
    const child = new Child(name, proc)
    pin(proc.pid ?? 0, opts.role ?? 'server')
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
      proc.on('message', (msg: ReplyMessage | ReadyMessage) => {
        if (!('ready' in msg)) return
        clearTimeout(timer)
        child.port = msg.port
        trace(`${name} listening on ${child.url}`)
        resolve(child)
      })
      proc.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`${name} exited during start-up (${code})${child.tail()}`))
      })
    })
  }

  get pid(): number {
    return this.proc.pid ?? 0
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  call<T>(cmd: string, arg?: unknown): Promise<T> {
    if (this.exit !== undefined) return Promise.reject(new Error(`${this.name} is not running${this.tail()}`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.proc.send({ id, cmd, arg } satisfies CallMessage)
    })
  }

  /** CPU seconds (user + system) the process has used; undefined where /proc is missing */
  cpuSeconds(): number | undefined {
    return procCpuSeconds(this.pid)
  }

  tail(): string {
    const t = this.stderr.trim()
    return t === '' ? '' : `\n--- ${this.name} stderr ---\n${t}`
  }

  /** SIGTERM, then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (this.exit !== undefined) return
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()))
    this.proc.kill('SIGTERM')
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

const CLOCK_TICKS = 100

/** utime + stime of a Linux process, in seconds. */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the fields after the command name, which sits in parentheses and may hold spaces
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return undefined
  }
}
