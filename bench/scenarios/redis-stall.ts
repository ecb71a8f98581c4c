/**
 * 6. (--only=redis-stall) The hit path with Redis stopped mid-traffic: a gateway with REDIS_URL (shared tier and
 * shared rate limit on) answering warm-cache hits, measured with Redis up and, in the same round, right after
 * SIGSTOP (process stopped, socket open: a Redis that hangs). The hit path never waits on Redis, so the stalled
 * figure should stay within 20 % of the Redis-up one.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { asCandidate, cycling, metric, prebuilt, startGateway, startUpstream } from '../lib/candidates.js'
import { load, median, type Measurement } from '../lib/load.js'
import { fmt, type Check, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'
import { freePort } from '../lib/ports.js'

async function waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await cond().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

export async function redisStall(s: Settings): Promise<ScenarioReport> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    return { id: 'redis-stall', title: '6. Hit path with Redis stopped (SIGSTOP)', setup: 'skipped', table: { head: [], rows: [] }, checks: [], notes: ['redis-server is not installed: skipped'], data: {} }
  }
  const stop: Array<{ stop(): Promise<void> }> = []
  let redis: ChildProcess | undefined
  try {
    const port = await freePort()
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    const r = redis
    stop.push({ stop: async () => void r.kill('SIGKILL') })
    const upstream = await startUpstream('upstream')
    stop.push(upstream)
    const ids = await upstream.call<string[]>('finished', { n: s.hit.tasks, bodyBytes: s.hit.bodyBytes })
    const gw = await startGateway('gateway-redis', upstream, { LOG_LEVEL: 'warn', REDIS_URL: `redis://127.0.0.1:${port}` })
    stop.push(gw)
    const redisUp = (): Promise<boolean> => metric(gw, 'mj_gateway_redis_up').then((v) => v === 1)
    await waitFor(redisUp, 10_000, 'the gateway to connect to Redis')
    const target = asCandidate('gateway', gw)
    await load(target, { connections: 8, duration: 60, amount: ids.length, requests: cycling(ids) })
    await load(target, { connections: s.connections, duration: s.warmupSeconds, requests: prebuilt(ids) })

    const up: Measurement[] = []
    const stalled: Measurement[] = []
    const ratios: number[] = []
    for (let round = 0; round < s.rounds; round++) {
      await waitFor(redisUp, 15_000, 'Redis to be up again (the breaker probes every 5 s)')
      const a = await load(target, { connections: s.connections, duration: s.seconds, requests: prebuilt(ids) })
      r.kill('SIGSTOP')
      const b = await load(target, { connections: s.connections, duration: s.seconds, requests: prebuilt(ids) })
      r.kill('SIGCONT')
      up.push(a)
      stalled.push(b)
      ratios.push(b.rps / a.rps)
    }
    const non200 = (ms: Measurement[]): number => ms.reduce((n, m) => n + m.errors + Object.entries(m.statusCodes).filter(([c]) => c !== '200').reduce((k, [, v]) => k + v, 0), 0)
    const ratio = median(ratios)
    const checks: Check[] = [{ name: 'hit path rps, Redis stopped ÷ Redis up', value: fmt.ratio(ratio), goal: '≥ 0.80×', met: ratio >= 0.8 }]
    const row = (name: string, ms: Measurement[]): string[] => [name, fmt.int(median(ms.map((m) => m.rps))), fmt.ms(median(ms.map((m) => m.p50))), fmt.ms(median(ms.map((m) => m.p99))), fmt.int(non200(ms))]
    return {
      id: 'redis-stall',
      title: '6. Hit path with Redis stopped (SIGSTOP)',
      setup:
        `${ids.length} finished tasks cached in memory, gateway with REDIS_URL (shared tier, shared rate limit), ${s.connections} connections; ` +
        `${s.rounds} rounds, each ${s.seconds} s with Redis up then ${s.seconds} s starting at SIGSTOP (SIGCONT after; the next round waits for mj_gateway_redis_up 1). Medians over rounds.`,
      table: { head: ['Redis', 'rps', 'p50 ms', 'p99 ms', 'non-200'], rows: [row('up', up), row('stopped (SIGSTOP)', stalled)] },
      checks,
      notes: [],
      data: { up, stalled, ratios }
    }
  } finally {
    redis?.kill('SIGCONT')
    for (const p of stop.reverse()) await p.stop().catch(() => undefined)
  }
}
