/**
 * `npm run demo` polls a live task fast enough to show the cache at work (README "Try it"): the printed poll loop
 * shows HIT between MISSes, and the printed three-pollers line makes one upstream call (COALESCED).
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { promisify } from 'node:util'
import t from 'tap'

const ROOT = new URL('../', import.meta.url).pathname
const TSC = new URL('node_modules/typescript/bin/tsc', `file://${ROOT}`).pathname

t.setTimeout(120_000)

t.test('the demo\'s poll lines show HIT and COALESCED on a live task', async (t) => {
  // npm run demo runs the compiled output: compile it when the demo's sources are newer (CI builds first)
  const stale = ['run', 'simulated-upstream'].some((f) => {
    const out = `${ROOT}dist/src/demo/${f}.js`
    return !existsSync(out) || statSync(out).mtimeMs < statSync(`${ROOT}src/demo/${f}.ts`).mtimeMs
  })
  if (stale) await promisify(execFile)(process.execPath, [TSC, '-p', 'tsconfig.build.json'], { cwd: ROOT })
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  // no coverage hooks: the demo is a script for people, run here only for what it prints
  const env = { PATH: process.env['PATH'] ?? '', PORT: String(port), HOST: '127.0.0.1' }
  const demo = spawn(process.execPath, ['dist/src/demo/run.js'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => {
    demo.kill('SIGTERM')
  })
  let out = ''
  demo.stdout.on('data', (c: Buffer) => (out += c.toString()))
  for (let i = 0; i < 400 && !out.includes('/metrics'); i++) await new Promise((r) => setTimeout(r, 25))
  const lines = out.split('\n')
  const pollLoop = lines.find((l) => l.startsWith('for i in') && l.includes('sleep 0.25'))
  const together = lines.find((l) => l.startsWith('for n in 1 2 3'))
  t.ok(pollLoop, 'a poll loop is printed')
  t.ok(together, 'a three-pollers line is printed')
  const bash = async (line: string): Promise<string> => (await promisify(execFile)('bash', ['-c', line], { timeout: 30_000 })).stdout
  const polled = await bash(pollLoop as string)
  t.match(polled, /x-cache: MISS/i)
  t.match(polled, /x-cache: HIT/i, `the loop shows poll-cache HITs:\n${polled}`)
  t.match(polled, /SUCCESS/)
  // the live task's poll cache lasts POLL_CACHE_MS: wait it out so the three arrive at a cold entry
  await new Promise((r) => setTimeout(r, 1200))
  const upstreamCalls = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    return text
      .split('\n')
      .filter((l) => l.startsWith('mj_gateway_upstream_requests_total{'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
  }
  const before = await upstreamCalls()
  const three = await bash(together as string)
  const seen = three.match(/x-cache: [A-Z]+/gi)?.map((h) => h.slice(9).toUpperCase()) ?? []
  // usually one MISS and two COALESCED; on a busy machine a curl may start after the answer came and HIT
  t.equal(seen.length, 3, `three answers:\n${three}`)
  t.equal(seen.filter((x) => x === 'MISS').length, 1, `one MISS:\n${three}`)
  t.ok(
    seen.every((x) => ['MISS', 'COALESCED', 'HIT'].includes(x)),
    `the others COALESCED (or HIT):\n${three}`
  )
  t.equal((await upstreamCalls()) - before, 1, 'three pollers at once share one upstream call')
})
