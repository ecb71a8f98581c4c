/**
 * The simulated upstream (src/demo) in its own process. With `faults`, a front server answers a share of
 * requests with 5xx, hangs or resets, and forwards the rest to the simulation (the soak's hostile upstream).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { startSimulatedUpstream } from '../../src/demo/simulated-upstream.js'
import { childArg, serveIpc } from './ipc.js'

export interface Faults {
  /** shares of requests, 0..1 */
  error5xx: number
  hang: number
  reset: number
}

export interface UpstreamArg {
  apiKey: string
  stepMs?: number
  latencyMs?: number
  latencyJitterMs?: number
  faults?: Faults
}

export interface TasksArg {
  n: number
  /** finished tasks: aim for bodies of about this many bytes */
  bodyBytes?: number
  /** live tasks: `never` stays IN_PROGRESS for good */
  outcome?: 'SUCCESS' | 'FAILURE' | 'never'
}

const FETCH_ROUTE = 'GET /mj/task/:id/fetch'
/** a hung request is let go after this long, so a soak's memory stays bounded */
const HANG_LIMIT_MS = 60_000

const arg = childArg<UpstreamArg>()
const sim = await startSimulatedUpstream({
  apiKey: arg.apiKey,
  recordRequests: false,
  ...(arg.stepMs === undefined ? {} : { stepMs: arg.stepMs }),
  ...(arg.latencyMs === undefined ? {} : { latencyMs: arg.latencyMs }),
  ...(arg.latencyJitterMs === undefined ? {} : { latencyJitterMs: arg.latencyJitterMs })
})

let padBytes: number | undefined
/** the pad that brings a finished task's body to about `bodyBytes` (one probe task measures the rest) */
async function padFor(bodyBytes: number): Promise<number> {
  if (padBytes === undefined) {
    const probe = sim.finishedTask()
    const res = await fetch(`${sim.url}/mj/task/${probe}/fetch`, { headers: { authorization: `Bearer ${arg.apiKey}` } })
    padBytes = Math.max(0, bodyBytes - (await res.arrayBuffer()).byteLength)
  }
  return padBytes
}

const faultCounts = { error5xx: 0, hang: 0, reset: 0, forwarded: 0 }
let port = sim.port
if (arg.faults !== undefined) port = await startFaultFront(arg.faults)

serveIpc(port, {
  async finished(raw) {
    const { n, bodyBytes = 3072 } = raw as TasksArg
    const pad = await padFor(bodyBytes)
    return Array.from({ length: n }, () => sim.finishedTask({ outcome: 'SUCCESS', bodyPadBytes: pad }))
  },
  live(raw) {
    const { n, outcome = 'SUCCESS' } = raw as TasksArg
    return Array.from({ length: n }, () => sim.createTask({ outcome }))
  },
  /** task fetches the simulation has answered so far */
  fetches: () => sim.stats.byRoute[FETCH_ROUTE] ?? 0,
  faults: () => faultCounts,
  /** every request the simulation has answered so far (push scenario) */
  requests: () => sim.stats.requests,
  /** the same, by route ('POST /mj/task/list-by-condition', …) */
  byRoute: () => sim.stats.byRoute
})

async function startFaultFront(faults: Faults): Promise<number> {
  const pool = new Pool(sim.url, { connections: 128 })
  const hung = new Set<ServerResponse>()
  const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v
    const up = await pool.request({ method: req.method === 'POST' ? 'POST' : 'GET', path: req.url ?? '/', headers, body: req })
    const body = Buffer.from(await up.body.arrayBuffer())
    res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'application/json'), 'content-length': body.length })
    res.end(body)
  }
  const server = createServer((req, res) => {
    const roll = Math.random()
    if (roll < faults.error5xx) {
      faultCounts.error5xx++
      const status = [500, 502, 503][Math.floor(Math.random() * 3)] as number
      res.writeHead(status, { 'content-type': 'application/json' }).end('{"code":9,"description":"simulated failure"}')
    } else if (roll < faults.error5xx + faults.hang) {
      faultCounts.hang++
      hung.add(res)
      const timer = setTimeout(() => res.destroy(), HANG_LIMIT_MS)
      res.on('close', () => {
        clearTimeout(timer)
        hung.delete(res)
      })
    } else if (roll < faults.error5xx + faults.hang + faults.reset) {
      faultCounts.reset++
      req.socket.resetAndDestroy()
    } else {
      faultCounts.forwarded++
      forward(req, res).catch(() => res.destroy())
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}
