import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

// The benchmark's numbers are for people; CI only proves `npm run bench -- --quick` runs every scenario without crashing.
const RUN = new URL('../dist/bench/run.js', import.meta.url)

// A shared CI machine may be slow; --quick takes ~30 s on a quiet 2-core one and 106 s beside the rest of the suite.
t.setTimeout(420_000)

t.test('npm run bench -- --quick: every scenario runs to the end and writes its results', async (t) => {
  if (!existsSync(RUN)) t.fail('dist/bench/run.js is missing: run `npm run build` first')
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-bench-smoke-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = join(dir, 'smoke.json')
  const child = spawn(process.execPath, [RUN.pathname, '--quick', `--out=${out}`], {
    // a clean environment: the bench decides every variable its candidates see
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')))
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 0, `the bench exits 0\n${output}`)
  const results = JSON.parse(readFileSync(out, 'utf8')) as { scenarios: Record<string, unknown>; checks: Array<{ name: string }> }
  t.same(Object.keys(results.scenarios), ['hit', 'ownership', 'miss', 'storm', 'push', 'memory', 'soak'], 'all seven scenarios reported')
  t.ok(results.checks.some((c) => c.name === 'gateway crashes'), 'the soak reports crashes')
  for (const title of ['1. Hit path', '2. Miss path', '3. Polling storm', '3b. Push', '4. Memory', '5. Fault soak']) t.match(output, title, `prints ${title}`)
})
