/** What a run measures and for how long: `--quick` (CI smoke, under a minute), the full run, or `--soak` alone. */
export type ScenarioId = 'hit' | 'ownership' | 'miss' | 'storm' | 'push' | 'memory' | 'soak' | 'redis-stall'
export const SCENARIOS: readonly ScenarioId[] = ['hit', 'ownership', 'miss', 'storm', 'push', 'memory', 'soak']
/** run only when asked for (--only=redis-stall): it needs redis-server installed */
export const EXTRA_SCENARIOS: readonly ScenarioId[] = ['redis-stall']

export interface Settings {
  mode: 'full' | 'quick' | 'soak'
  scenarios: ScenarioId[]
  /** interleaved measured rounds per throughput scenario */
  rounds: number
  /** length of one measured run, seconds */
  seconds: number
  /** unmeasured load on each candidate before the first round, seconds */
  warmupSeconds: number
  /** autocannon connections for the throughput scenarios */
  connections: number
  hit: { tasks: number; bodyBytes: number }
  miss: { tasks: number; pollers: number; upstreamLatencyMs: number; upstreamJitterMs: number }
  storm: { pollers: number; tasks: number; seconds: number; rounds: number; stepMs: number }
  /** idleSettleMs: how long the idle subscribers sit before their memory is measured again */
  push: { subscribers: number; tasks: number; stepMs: number; idleSubscribers: number; idleSettleMs: number }
  memory: { counts: [number, number]; bodyBytes: number }
  soak: { seconds: number; connections: number }
  /** write the gateway's CPU profile of the hit path (bench/results/*.cpuprofile) */
  profile: boolean
  out: string | undefined
  verbose: boolean
  /** another built checkout of the gateway, measured beside this one (before/after a change) */
  baseline: string | undefined
}

export const SOAK_MAX_SECONDS = 3600

export function parseArgs(argv: readonly string[]): Settings {
  const flags = new Set(argv.filter((a) => a.startsWith('--') && !a.includes('=')))
  const values = new Map(
    argv
      .filter((a) => a.startsWith('--') && a.includes('='))
      .map((a) => [a.slice(2, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] as const)
  )
  for (const f of flags) if (!['--quick', '--soak', '--profile', '--verbose', '--help'].includes(f)) throw new Error(`unknown flag ${f}`)
  for (const k of values.keys()) if (!['soak-seconds', 'only', 'out', 'rounds', 'seconds', 'baseline', 'jitter', 'pollers'].includes(k)) throw new Error(`unknown option --${k}`)
  if (flags.has('--help')) throw new HelpRequested()

  const quick = flags.has('--quick')
  const soakOnly = flags.has('--soak')
  const mode = soakOnly ? 'soak' : quick ? 'quick' : 'full'
  const only = values.get('only')
  let scenarios: ScenarioId[] = soakOnly ? ['soak'] : [...SCENARIOS]
  if (only !== undefined) {
    scenarios = only.split(',').map((s) => s.trim()) as ScenarioId[]
    const known = [...SCENARIOS, ...EXTRA_SCENARIOS]
    for (const s of scenarios) if (!known.includes(s)) throw new Error(`--only: unknown scenario ${s} (${known.join(', ')})`)
  }
  const num = (k: string, def: number, min: number, max: number): number => {
    const raw = values.get(k)
    if (raw === undefined) return def
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${k}: expected a number from ${min} to ${max}, got ${raw}`)
    return n
  }
  return {
    mode,
    scenarios,
    rounds: num('rounds', quick ? 3 : 9, 1, 50),
    seconds: num('seconds', quick ? 0.5 : 4, 0.2, 600),
    warmupSeconds: quick ? 0.3 : 3,
    connections: 64,
    hit: { tasks: quick ? 300 : 1000, bodyBytes: 3072 },
    miss: { tasks: 20, pollers: num('pollers', 200, 1, 1000), upstreamLatencyMs: 20, upstreamJitterMs: num('jitter', 10, 0, 1000) },
    storm: { pollers: 200, tasks: 20, seconds: quick ? 3 : 10, rounds: quick ? 1 : 3, stepMs: 1000 },
    push: { subscribers: 200, tasks: 20, stepMs: quick ? 1000 : 6000, idleSubscribers: quick ? 2000 : 10_000, idleSettleMs: quick ? 3000 : 30_000 },
    memory: { counts: quick ? [1000, 3000] : [10_000, 50_000], bodyBytes: 3072 },
    soak: { seconds: num('soak-seconds', soakOnly ? 120 : quick ? 3 : 30, 1, SOAK_MAX_SECONDS), connections: 50 },
    profile: flags.has('--profile'),
    out: values.get('out'),
    verbose: flags.has('--verbose'),
    baseline: values.get('baseline')
  }
}

export class HelpRequested extends Error {}

export const HELP = `npm run bench [-- options]
  (no option)         all seven scenarios (hit, ownership, miss, storm, push, memory, a 30 s soak); writes bench/results/latest.json
  --quick             the same in under a minute, short and noisy (CI smoke); writes bench/results/quick.json
  --soak              only the fault soak, 2 minutes (--soak-seconds=N, at most ${SOAK_MAX_SECONDS})
  --only=hit,miss     only these scenarios (hit, ownership, miss, storm, push, memory, soak; and redis-stall, run only when named:
                      hit-path throughput with Redis stopped mid-traffic (SIGSTOP) against Redis up; needs redis-server);
                      writes bench/results/partial.json (latest.json keeps the last full run)
  --rounds=N --seconds=S   measured rounds per candidate and seconds per round
  --profile           also write the gateway's CPU profile of the hit path to bench/results/
  --out=FILE          write the JSON results there instead
  --verbose           print each phase with a timestamp
  --pollers=N         miss path: pollers (connections) over its 20 live tasks; default 200
  --jitter=MS         miss path: the simulated upstream's latency varies by up to this either way; default 10
  --baseline=DIR      also measure the gateway built in DIR (another checkout, after npm run build there):
                      before/after figures for a change, in the same run (hit and miss scenarios)`
