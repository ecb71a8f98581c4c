/**
 * `npm run bench`: the gateway against its ceiling and its peers, side by side, in one run.
 * Every figure that matters is a ratio against a baseline measured in the same run (rounds interleaved,
 * medians), because absolute figures on a shared 2-core machine mean little. See README.md, "Performance".
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { machineFacts } from './lib/machine.js'
import { pin, pinningNote } from './lib/cpus.js'
import { enableTrace } from './lib/trace.js'
import { consoleReport, markdownReport, type ScenarioReport } from './lib/report.js'
import { HELP, HelpRequested, parseArgs, SCENARIOS, type ScenarioId, type Settings } from './lib/settings.js'
import { hitPath } from './scenarios/hit.js'
import { missPath } from './scenarios/miss.js'
import { ownership } from './scenarios/ownership.js'
import { pollingStorm } from './scenarios/storm.js'
import { push } from './scenarios/push.js'
import { memory } from './scenarios/memory.js'
import { faultSoak } from './scenarios/soak.js'
import { redisStall } from './scenarios/redis-stall.js'

// dist/bench/run.js → <repo>/bench/results/
const RESULTS_DIR = new URL('../../bench/results/', import.meta.url)

const SCENARIO_RUNNERS: Record<ScenarioId, (s: Settings, dir: URL) => Promise<ScenarioReport>> = {
  hit: hitPath,
  ownership,
  miss: missPath,
  storm: pollingStorm,
  push,
  memory,
  soak: faultSoak,
  'redis-stall': redisStall
}

async function main(): Promise<number> {
  let settings: Settings
  try {
    settings = parseArgs(process.argv.slice(2))
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(HELP)
      return 0
    }
    console.error(`bench: ${(err as Error).message}\n${HELP}`)
    return 2
  }
  if (settings.verbose) enableTrace()
  pin(process.pid, 'outside')
  mkdirSync(RESULTS_DIR, { recursive: true })
  const machine = machineFacts()
  console.log(
    `mj-gateway bench (${settings.mode}): node ${machine.node}, ${machine.cores} × ${machine.cpu}, ` +
      `load average ${machine.loadAverageAtStart.join(' ')}, commit ${machine.commit ?? 'unknown'}`
  )
  console.log(pinningNote())
  const started = Date.now()
  const reports: ScenarioReport[] = []
  for (const id of settings.scenarios) {
    const t0 = Date.now()
    process.stdout.write(`\n[${id}] running…`)
    const report = await SCENARIO_RUNNERS[id](settings, RESULTS_DIR)
    process.stdout.write(` ${((Date.now() - t0) / 1000).toFixed(0)} s\n`)
    console.log(consoleReport(report))
    reports.push(report)
  }

  const checks = reports.flatMap((r) => r.checks.map((c) => ({ scenario: r.id, ...c })))
  const missed = checks.filter((c) => c.met === false)
  const results = {
    mode: settings.mode,
    seconds: Math.round((Date.now() - started) / 1000),
    machine,
    settings,
    checks,
    scenarios: Object.fromEntries(reports.map((r) => [r.id, { title: r.title, setup: r.setup, table: r.table, notes: r.notes, data: r.data }]))
  }
  // latest.* holds the last full run (the README's figures): a run of some scenarios only must not replace it
  const partial = settings.scenarios.join() !== SCENARIOS.join()
  const name = settings.mode === 'quick' ? 'quick' : settings.mode === 'soak' ? 'soak' : partial ? 'partial' : 'latest'
  const base = settings.out ?? fileURLToPath(new URL(name, RESULTS_DIR))
  const jsonPath = base.endsWith('.json') ? base : `${base}.json`
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`)
  const md = [
    `_${machine.date.slice(0, 10)}, ${settings.mode} run, commit ${machine.commit ?? 'unknown'}: node ${machine.node}, ${machine.cores} × ${machine.cpu}, ${machine.os}._`,
    '',
    ...reports.map(markdownReport).flatMap((t) => [t, ''])
  ].join('\n')
  writeFileSync(jsonPath.replace(/\.json$/, '.md'), md)
  console.log(`\n${checks.filter((c) => c.met === true).length} of ${checks.filter((c) => c.met !== undefined).length} goals met` +
    (missed.length > 0 ? ` (missed: ${missed.map((c) => c.name).join('; ')})` : '') +
    `; ${results.seconds} s; results in ${jsonPath}`)
  // the figures are for people: a missed goal is reported, not an exit status (CI runs --quick as a smoke test)
  return 0
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('\nbench failed:', err instanceof Error ? (err.stack ?? err.message) : err)
    process.exit(1)
  }
)
