import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { tempDataDir } from './data-dir.js'

/** One gateway app listening on 127.0.0.1, as one replica behind a load balancer. */
export interface Replica {
  readonly url: string
  readonly app: FastifyInstance
  /** every log line it wrote */
  readonly logs: string[]
}

export interface Answer {
  status: number
  headers: Headers
  text: string
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export async function startReplica(t: Teardown, env: Record<string, string>): Promise<Replica> {
  const logs: string[] = []
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString())
      cb()
    }
  })
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'info', DATA_DIR: env['DATA_DIR'] ?? tempDataDir(t),
    // ownership (docs/tenancy.md) is tested where a test sets TASK_OWNERSHIP; elsewhere any client may read any task
    TASK_OWNERSHIP: env['TASK_OWNERSHIP'] ?? 'off', ...env }), { logStream })
  t.teardown(() => app.close())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, app, logs }
}

export async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(base + path, { headers })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

export const fetchTask = (r: Replica, id: string): Promise<Answer> => get(r.url, `/mj/task/${id}/fetch`)

/** a sample's value from /metrics, e.g. metric(r, 'mj_gateway_cache_lookups_total{result="hit_shared"}') */
export async function metric(r: Replica, series: string): Promise<number | undefined> {
  const { text } = await get(r.url, '/metrics')
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** waits (up to 10 s) until /readyz says redis is `state` */
export async function waitRedis(r: Replica, state: 'up' | 'down'): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { text } = await get(r.url, '/readyz')
    if ((JSON.parse(text) as { redis: string }).redis === state) return
    await sleep(50)
  }
  throw new Error(`redis never became ${state} for ${r.url}`)
}
