/**
 * `npm run demo` (src/demo/run.ts) when it cannot start, and without client tokens: one line and exit 1 for a bad
 * variable or a taken port, and the banner says the submit routes are off. Coverage hooks are kept (NODE_V8_COVERAGE).
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import t, { type Test } from 'tap'
import { ENV_VARIABLES } from '../src/config.js'
import { isolatedDataEnv } from './helpers/data-dir.js'

const ROOT = new URL('../', import.meta.url).pathname
const RUN = `${ROOT}dist/src/demo/run.js`

function demo(
  tt: Test,
  env: Record<string, string>
): { out: () => string; err: () => string; exited: Promise<number | null>; kill: () => void; interrupt: () => void } {
  const clean: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!ENV_VARIABLES.includes(k) && !k.startsWith('UPSTREAM_')) clean[k] = v
  const child = spawn(process.execPath, [RUN], { cwd: ROOT, env: { ...clean, ...isolatedDataEnv(tt), ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  tt.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { out: () => out, err: () => err, exited, kill: () => child.kill('SIGTERM'), interrupt: () => child.kill('SIGINT') }
}

t.test('a bad PORT: one line naming PORT, exit 1', async (t) => {
  const run = demo(t, { PORT: 'abc' })
  t.equal(await run.exited, 1)
  t.match(run.err().trim(), /^PORT: /)
  t.equal(run.err().trim().split('\n').length, 1)
})

t.test('a taken port: one line saying so and how to pick another, exit 1', async (t) => {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => s.close(() => resolve())))
  const port = (s.address() as { port: number }).port
  const run = demo(t, { PORT: String(port), HOST: '127.0.0.1' })
  t.equal(await run.exited, 1)
  t.equal(run.err().trim(), `Port ${port} on 127.0.0.1 is already in use: set PORT to a free port, e.g. PORT=8081 npm run demo`)
})

t.test('another listen error (an address not on this machine): printed, exit 1', async (t) => {
  const run = demo(t, { PORT: '0', HOST: '192.0.2.1' })
  t.equal(await run.exited, 1)
  t.match(run.err(), /EADDRNOTAVAIL/)
})

t.test('CLIENT_KEYS empty: the banner says the submit routes are off', async (t) => {
  // every demo default overridden as well: the upstream auth style, the log level, ownerless tasks hidden
  const run = demo(t, { PORT: '0', HOST: '127.0.0.1', CLIENT_KEYS: '', UPSTREAM_AUTH_STYLE: 'mj-api-secret', LOG_LEVEL: 'error', OWNERLESS_TASKS: 'hidden' })
  for (let i = 0; i < 400 && !run.out().includes('submit routes are off') && !run.out().includes('/metrics'); i++) await new Promise((r) => setTimeout(r, 25))
  t.match(run.out(), '# submit routes are off (PASSTHROUGH=auto turns them on only when CLIENT_KEYS is set)')
  run.kill()
  t.equal(await run.exited, 0, 'Ctrl-C / SIGTERM closes and exits 0')
})

t.test('own CLIENT_KEYS and METRICS_TOKEN: the banner uses $MJGW_TOKEN and $METRICS_TOKEN; Ctrl-C then SIGTERM still exits 0', async (t) => {
  const run = demo(t, { PORT: '0', HOST: '0.0.0.0', CLIENT_KEYS: 'team:tok-team-demo-5521', METRICS_TOKEN: 'metrics-token-demo-5521' })
  for (let i = 0; i < 400 && !run.out().includes('Ctrl-C stops the demo'); i++) await new Promise((r) => setTimeout(r, 25))
  const out = run.out()
  t.match(out, 'Client tokens come from CLIENT_KEYS: export MJGW_TOKEN=<one of them> first.')
  t.match(out, /curl -i http:\/\/127\.0\.0\.1:\d+\/mj\/task\/\d+\/fetch -H "Authorization: Bearer \$MJGW_TOKEN"/, '0.0.0.0 is shown as 127.0.0.1')
  t.match(out, `/metrics -H "Authorization: Bearer $METRICS_TOKEN"`)
  t.notMatch(out, 'tok-team-demo-5521', 'the banner never prints a token')
  t.notMatch(out, 'metrics-token-demo-5521')
  run.interrupt()
  run.kill()
  t.equal(await run.exited, 0, 'a second signal during the shutdown changes nothing')
})
