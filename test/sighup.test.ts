import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { UPSTREAM_KEY, call } from './helpers/access-harness.js'

const OLD = 'tok-sighup-old-0123456789'
const NEW = 'tok-sighup-new-9876543210'

t.test('§3 SIGHUP re-reads CLIENT_KEYS_FILE in the running process (and does not stop it); SIGTERM exits 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-sighup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'client-keys')
  writeFileSync(file, `team:${OLD}\n`)
  const sim = await startSimulatedUpstream({ apiKey: UPSTREAM_KEY, stepMs: 10, failureRatio: 0 })
  t.teardown(() => sim.close())

  // process.execArgv carries tap's TypeScript loader, so the child runs src/main.ts as the test does.
  const child = spawn(process.execPath, [...process.execArgv, 'src/main.ts'], {
    env: {
      ...process.env,
      UPSTREAM_BASE_URL: sim.url,
      UPSTREAM_API_KEY: UPSTREAM_KEY,
      CLIENT_KEYS_FILE: file,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info'
    },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const lines: string[] = []
  const waiters: { match: (l: string) => boolean; resolve: (l: string) => void }[] = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line)
    for (const w of waiters.splice(0)) {
      if (w.match(line)) w.resolve(line)
      else waiters.push(w)
    }
  })
  const waitFor = (match: (l: string) => boolean): Promise<string> =>
    new Promise((resolve) => {
      const seen = lines.find(match)
      if (seen !== undefined) resolve(seen)
      else waiters.push({ match, resolve })
    })

  const listening = await waitFor((l) => l.includes('Server listening at'))
  const url = /http:\/\/127\.0\.0\.1:\d+/.exec(listening)?.[0] ?? ''
  t.ok(url, `listening at ${url}`)
  const gw = { url }
  const id = sim.finishedTask()
  const path = `/mj/task/${id}/fetch`
  t.equal((await call(gw, path, { headers: { authorization: `Bearer ${OLD}` } })).status, 200)

  writeFileSync(file, `team:${NEW}\n`)
  child.kill('SIGHUP')
  const reloaded = await waitFor((l) => l.includes('client tokens reloaded'))
  t.match(JSON.parse(reloaded), { tokens: 1 })
  t.equal(child.exitCode, null, 'still running after SIGHUP')
  t.equal((await call(gw, path, { headers: { authorization: `Bearer ${NEW}` } })).status, 200, 'the new token works')
  t.equal((await call(gw, path, { headers: { authorization: `Bearer ${OLD}` } })).status, 401, 'the old one is refused')

  child.kill('SIGTERM')
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 0)
  const all = lines.join('\n')
  for (const secret of [OLD, NEW, UPSTREAM_KEY]) t.notMatch(all, secret, 'no secret in the logs')
})
