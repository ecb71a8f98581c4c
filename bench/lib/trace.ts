/** `--verbose`: timestamped phase lines on stderr, to see where a run spends its time. */
let enabled = false
const t0 = performance.now()

export function enableTrace(): void {
  enabled = true
}

export function trace(message: string): void {
  if (enabled) process.stderr.write(`  [${((performance.now() - t0) / 1000).toFixed(1)} s] ${message}\n`)
}
