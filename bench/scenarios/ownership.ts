/**
 * 1b. Hit path with task ownership on against off (docs/tenancy.md): the same build, the same client token, the same
 * warm cache; the only difference is TASK_OWNERSHIP. The tasks are submitted through the gateway by that client, so
 * with ownership on every hit checks a real owner record (held in memory in front of the embedded store).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { asCandidate, cycling, interleaved, pairedRatio, prebuilt, startGateway, startUpstream } from '../lib/candidates.js'
import type { Child } from '../lib/child.js'
import { load, type Summary } from '../lib/load.js'
import { fmt, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'

const TOKEN = 'bench-team-token'
const HEADERS = { authorization: `Bearer ${TOKEN}` }
/** the simulated upstream's tasks finish within 4 steps of their submit */
const STEP_MS = 50
const ON = 'gateway TASK_OWNERSHIP=on'
const OFF = 'gateway TASK_OWNERSHIP=off'

async function submitAll(gateway: Child, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i += 16) {
    const part = await Promise.all(
      Array.from({ length: Math.min(16, n - i) }, async (_, j) => {
        const res = await fetch(`${gateway.url}/mj/submit/imagine`, {
          method: 'POST',
          headers: { ...HEADERS, 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: `bench ownership ${i + j}` })
        })
        const answer = (await res.json()) as { code?: number; result?: string }
        if (res.status !== 200 || answer.code !== 1 || typeof answer.result !== 'string') throw new Error(`submit answered HTTP ${res.status}`)
        return answer.result
      })
    )
    ids.push(...part)
  }
  return ids
}

export async function ownership(s: Settings): Promise<ScenarioReport> {
  const stop: Child[] = []
  try {
    const upstream = await startUpstream('upstream', { stepMs: STEP_MS })
    stop.push(upstream)
    const env = { LOG_LEVEL: 'warn', CLIENT_KEYS: `team:${TOKEN}` }
    const [on, off] = await Promise.all([startGateway('gateway-ownership-on', upstream, { ...env, TASK_OWNERSHIP: 'on' }), startGateway('gateway-ownership-off', upstream, { ...env, TASK_OWNERSHIP: 'off' })])
    stop.push(on, off)
    const ids = await submitAll(on, s.hit.tasks)
    // the same history on both (a thousand submits, their ids discarded here): only the check differs
    await submitAll(off, s.hit.tasks)
    await sleep(6 * STEP_MS)

    const candidates = [asCandidate(ON, on), asCandidate(OFF, off)]
    // warm both caches, then prove both answer every task from cache to this client
    for (const c of candidates) {
      await load(c, { connections: 8, duration: 60, amount: ids.length, requests: cycling(ids), headers: HEADERS })
      const res = await fetch(`${c.url}/mj/task/${ids[0] as string}/fetch`, { headers: HEADERS })
      await res.arrayBuffer()
      if (res.status !== 200 || res.headers.get('x-cache') !== 'HIT') throw new Error(`${c.name} answered HTTP ${res.status}, x-cache ${res.headers.get('x-cache')} after warm-up`)
    }
    // and that ownership is really on: another client's token does not see the task
    const other = await fetch(`${on.url}/mj/task/${ids[0] as string}/fetch`, { headers: { authorization: 'Bearer nobody' } })
    await other.arrayBuffer()
    if (other.status !== 401) throw new Error(`an unknown token answered HTTP ${other.status}`)

    const results = await interleaved(candidates, {
      rounds: s.rounds,
      warmupSeconds: s.warmupSeconds,
      seconds: s.seconds,
      load: { connections: s.connections, requests: prebuilt(ids), headers: HEADERS }
    })
    for (const c of [on, off]) if (c.exit !== undefined) throw new Error(`a gateway exited during the run${c.tail()}`)
    const onSummary = results.get(ON) as Summary
    const offSummary = results.get(OFF) as Summary
    const ratio = pairedRatio(onSummary, offSummary)
    const rows = [ON, OFF].map((name) => {
      const x = results.get(name) as Summary
      const non200 = Object.entries(x.statusCodes).filter(([code]) => code !== '200').reduce((n, [, v]) => n + v, 0) + x.errors
      return [name, fmt.int(x.rps), fmt.ms(x.p50), fmt.ms(x.p99), fmt.int(x.rpsPerCpu), fmt.int(non200)]
    })
    return {
      id: 'ownership',
      title: '1b. Hit path: task ownership on against off',
      setup:
        `${ids.length} finished tasks submitted through the gateway by one client (CLIENT_KEYS=team:…), fetched with its token, ` +
        `${s.connections} connections, ${s.rounds} interleaved rounds of ${s.seconds} s after ${s.warmupSeconds} s warm-up; ` +
        'the two gateways differ only in TASK_OWNERSHIP; ratio = median of the rounds\' own ratios.',
      table: { head: ['candidate', 'rps', 'p50 ms', 'p99 ms', 'req/CPU-s', 'non-200'], rows },
      checks: [{ name: 'hit path, ownership on ÷ off, rps', value: fmt.ratio(ratio), goal: '≥ 0.95× (within 5 %)', met: ratio === undefined ? undefined : ratio >= 0.95 }],
      notes: [],
      data: { tasks: ids.length, rounds: s.rounds, seconds: s.seconds, ratio, on: onSummary, off: offSummary }
    }
  } finally {
    for (const c of stop.reverse()) await c.stop().catch(() => undefined)
  }
}
