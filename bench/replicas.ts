/**
 * Replicas sharing Redis: how many upstream calls do N gateway replicas make, compared with one?
 *
 *   npm run build && node dist/bench/replicas.js          (starts its own redis-server on a free port)
 *   REDIS_URL=redis://127.0.0.1:6379 node dist/bench/replicas.js
 *
 * 1. Pollers of one new task: 60 concurrent pollers spread over 3 replicas, a fresh task each round.
 * 2. Polling storm: many tasks, several pollers each polling through a round-robin load balancer until
 *    their task is terminal, for 1 replica, N replicas sharing Redis, and N replicas without it.
 * 3. The hit path with and without REDIS_URL, and what a Redis-tier hit costs compared with a miss.
 * Everything runs in this process against the simulated upstream (with a fixed latency).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { startSimulatedUpstream, type SimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { freePort } from './lib/ports.js'

const UPSTREAM_LATENCY_MS = 50
const STEP_MS = 800
const KEY = 'bench-replicas-upstream-key'
const FETCHES = 'GET /mj/task/:id/fetch'

interface Gateway {
  url: string
  app: FastifyInstance
}

async function ownRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort()
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore'
  })
  const url = `redis://127.0.0.1:${port}`
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => undefined)
  for (let i = 0; ; i++) {
    try {
      await probe.connect()
      break
    } catch {
      if (i > 100) throw new Error('redis-server did not start (is it installed?)')
      await sleep(50)
    }
  }
  probe.disconnect()
  return {
    url,
    stop: async () => {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  }
}

async function gateways(n: number, upstream: SimulatedUpstream, redisUrl: string): Promise<Gateway[]> {
  const out: Gateway[] = []
  for (let i = 0; i < n; i++) {
    const app = await buildApp(loadConfig({ UPSTREAM_BASE_URL: upstream.url, UPSTREAM_API_KEY: KEY, REDIS_URL: redisUrl, LOG_LEVEL: 'error' }))
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    for (let j = 0; redisUrl !== '' && j < 100; j++) {
      const ready = (await (await fetch(`${url}/readyz`)).json()) as { redis: string }
      if (ready.redis === 'up') break
      await sleep(20)
    }
    out.push({ url, app })
  }
  return out
}

async function closeAll(gs: Gateway[]): Promise<void> {
  await Promise.all(gs.map((g) => g.app.close()))
}

interface Tally {
  requests: number
  byCache: Record<string, number>
}

async function poll(g: Gateway, id: string, tally: Tally): Promise<string> {
  const res = await fetch(`${g.url}/mj/task/${id}/fetch`)
  const body = (await res.json()) as { status?: string }
  tally.requests++
  const cache = `${res.status} ${res.headers.get('x-cache') ?? '-'}`
  tally.byCache[cache] = (tally.byCache[cache] ?? 0) + 1
  return body.status ?? ''
}

/** 60 concurrent pollers of one fresh task over 3 replicas, `rounds` times: upstream calls per round. */
async function pollersOfOneTask(redisUrl: string, replicas: number, pollers: number, rounds: number): Promise<number[]> {
  const upstream = await startSimulatedUpstream({ recordRequests: false, latencyMs: UPSTREAM_LATENCY_MS, stepMs: 60_000 })
  const gs = await gateways(replicas, upstream, redisUrl)
  const perRound: number[] = []
  const tally: Tally = { requests: 0, byCache: {} }
  for (let r = 0; r < rounds; r++) {
    const id = upstream.createTask()
    const before = upstream.stats.byRoute[FETCHES] ?? 0
    await Promise.all(Array.from({ length: pollers }, (_, i) => poll(gs[i % replicas] as Gateway, id, tally)))
    perRound.push((upstream.stats.byRoute[FETCHES] ?? 0) - before)
  }
  await closeAll(gs)
  await upstream.close()
  return perRound
}

interface StormResult {
  upstreamCalls: number
  tally: Tally
}

const STORM_ROUNDS = 3

function median(xs: number[]): number {
  const sorted = [...xs].sort((x, y) => x - y)
  return sorted[Math.floor(sorted.length / 2)] as number
}

/**
 * `tasks` tasks submitted together, `pollersPerTask` clients each polling every ~intervalMs (jittered)
 * through a round-robin balancer until the task is terminal, then fetching it twice more (a UI re-render).
 */
async function pollingStorm(
  redisUrl: string,
  replicas: number,
  opts: { tasks: number; pollersPerTask: number; intervalMs: number }
): Promise<StormResult> {
  const upstream = await startSimulatedUpstream({ recordRequests: false, latencyMs: UPSTREAM_LATENCY_MS, stepMs: STEP_MS, random: mulberry32(42) })
  const gs = await gateways(replicas, upstream, redisUrl)
  const tally: Tally = { requests: 0, byCache: {} }
  const ids = Array.from({ length: opts.tasks }, (_, i) => upstream.createTask({ prompt: `storm ${i}` }))
  const jitter = mulberry32(7)
  let next = 0
  const balancer = (): Gateway => gs[next++ % replicas] as Gateway
  const client = async (id: string): Promise<void> => {
    await sleep(jitter() * opts.intervalMs)
    for (;;) {
      const status = await poll(balancer(), id, tally)
      if (status === 'SUCCESS' || status === 'FAILURE') break
      await sleep(opts.intervalMs * (0.75 + jitter() / 2))
    }
    await poll(balancer(), id, tally)
    await poll(balancer(), id, tally)
  }
  await Promise.all(ids.flatMap((id) => Array.from({ length: opts.pollersPerTask }, () => client(id))))
  const upstreamCalls = upstream.stats.byRoute[FETCHES] ?? 0
  await closeAll(gs)
  await upstream.close()
  return { upstreamCalls, tally }
}

/** Closed-loop fetches of one cached terminal task for `ms`: requests per second (client in this process too). */
interface HitPathResult {
  rps: number
  redisCommands: number
}

async function hitPath(redisUrl: string, ms: number): Promise<HitPathResult> {
  const upstream = await startSimulatedUpstream({ recordRequests: false, latencyMs: UPSTREAM_LATENCY_MS })
  const [g] = (await gateways(1, upstream, redisUrl)) as [Gateway]
  const id = upstream.finishedTask()
  const tally: Tally = { requests: 0, byCache: {} }
  await poll(g, id, tally)
  await poll(g, id, tally)
  const commandsBefore = await redisCommands(redisUrl)
  const end = Date.now() + ms
  const started = Date.now()
  const before = tally.requests
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (Date.now() < end) await poll(g, id, tally)
    })
  )
  const rps = (tally.requests - before) / ((Date.now() - started) / 1000)
  // minus the INFO that read the first count
  const commands = redisUrl === '' ? 0 : (await redisCommands(redisUrl)) - commandsBefore - 1
  await closeAll([g])
  await upstream.close()
  return { rps, redisCommands: commands }
}

/** commands the Redis server has processed so far (0 without Redis) */
async function redisCommands(redisUrl: string): Promise<number> {
  if (redisUrl === '') return 0
  const admin = new Redis(redisUrl, { enableReadyCheck: false })
  const info = await admin.info('stats')
  admin.disconnect()
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1])
}

/** Mean latency of a first fetch on replica B of tasks replica A fetched (a Redis-tier hit), and of A's misses. */
async function sharedHitLatency(redisUrl: string, tasks: number): Promise<{ missMs: number; sharedHitMs: number }> {
  const upstream = await startSimulatedUpstream({ recordRequests: false, latencyMs: UPSTREAM_LATENCY_MS })
  const [a, b] = (await gateways(2, upstream, redisUrl)) as [Gateway, Gateway]
  const ids = Array.from({ length: tasks }, () => upstream.finishedTask())
  const tally: Tally = { requests: 0, byCache: {} }
  const timed = async (g: Gateway): Promise<number> => {
    const started = performance.now()
    for (const id of ids) await poll(g, id, tally)
    return (performance.now() - started) / tasks
  }
  const missMs = await timed(a)
  const sharedHitMs = await timed(b)
  await closeAll([a, b])
  await upstream.close()
  return { missMs, sharedHitMs }
}

function mulberry32(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const pct = (part: number, whole: number): string => `${((100 * part) / whole).toFixed(1)} %`

async function main(): Promise<void> {
  const own = process.env.REDIS_URL ? undefined : await ownRedis()
  const redisUrl = process.env.REDIS_URL ?? (own as { url: string }).url
  try {
    console.log(`upstream latency ${UPSTREAM_LATENCY_MS} ms, POLL_CACHE_MS 1000 (default), Redis ${own ? 'own redis-server' : 'REDIS_URL'}\n`)

    console.log('1. 60 concurrent pollers of one new task, 20 rounds')
    for (const [label, url, n] of [
      ['3 replicas, shared Redis', redisUrl, 3],
      ['3 replicas, no Redis   ', '', 3],
      ['1 replica              ', '', 1]
    ] as const) {
      const calls = await pollersOfOneTask(url, n, 60, 20)
      const total = calls.reduce((s, c) => s + c, 0)
      console.log(`   ${label}: upstream calls per round: mean ${(total / calls.length).toFixed(2)}, max ${Math.max(...calls)}`)
    }

    const storm = { tasks: 40, pollersPerTask: 6, intervalMs: 300 }
    console.log(
      `\n2. polling storm: ${storm.tasks} tasks × ${storm.pollersPerTask} pollers, every ~${storm.intervalMs} ms until terminal, ` +
        `round-robin over the replicas; ${STORM_ROUNDS} rounds`
    )
    const configs = [
      ['1 replica               ', '', 1],
      ['1 replica, Redis        ', redisUrl, 1],
      ['2 replicas, shared Redis', redisUrl, 2],
      ['3 replicas, shared Redis', redisUrl, 3],
      ['2 replicas, no Redis    ', '', 2],
      ['3 replicas, no Redis    ', '', 3]
    ] as const
    // Rounds interleave the configurations, and medians are compared: a busy machine shifts single runs.
    const results: StormResult[][] = configs.map(() => [])
    for (let round = 0; round < STORM_ROUNDS; round++) {
      for (const [i, [, url, n]] of configs.entries()) results[i]?.push(await pollingStorm(url, n, storm))
    }
    const baseline = median((results[0] as StormResult[]).map((r) => r.upstreamCalls))
    for (const [i, [label]] of configs.entries()) {
      const runs = results[i] as StormResult[]
      const calls = runs.map((r) => r.upstreamCalls)
      const requests = runs.reduce((sum, r) => sum + r.tally.requests, 0)
      const count = (k: string): number => runs.reduce((sum, r) => sum + (r.tally.byCache[k] ?? 0), 0)
      console.log(
        `   ${label}: upstream calls median ${median(calls)} (${Math.min(...calls)}–${Math.max(...calls)}), ` +
          `${(median(calls) / baseline).toFixed(2)}× one replica; of ${requests} requests HIT ${pct(count('200 HIT'), requests)}, ` +
          `COALESCED ${pct(count('200 COALESCED'), requests)}, MISS ${pct(count('200 MISS'), requests)}`
      )
    }

    console.log('\n3. hit path (a cached terminal task, 32 concurrent clients in this process, 3 s)')
    // alternated, best of two each: this machine may be busy with other work
    const without: HitPathResult[] = []
    const withRedis: HitPathResult[] = []
    for (let i = 0; i < 2; i++) {
      without.push(await hitPath('', 3000))
      withRedis.push(await hitPath(redisUrl, 3000))
    }
    const bestWithout = Math.max(...without.map((r) => r.rps))
    const bestWith = Math.max(...withRedis.map((r) => r.rps))
    const commands = withRedis.reduce((sum, r) => sum + r.redisCommands, 0)
    console.log(
      `   without REDIS_URL ${bestWithout.toFixed(0)} req/s, with REDIS_URL ${bestWith.toFixed(0)} req/s ` +
        `(ratio ${(bestWith / bestWithout).toFixed(2)}); Redis commands during the hits: ${commands}`
    )
    const { missMs, sharedHitMs } = await sharedHitLatency(redisUrl, 200)
    console.log(
      `   200 terminal tasks fetched on replica A (MISS): ${missMs.toFixed(1)} ms each; then on replica B (HIT from Redis): ${sharedHitMs.toFixed(1)} ms each`
    )
  } finally {
    await own?.stop()
  }
}

await main()
