/**
 * Logging that cannot take the gateway down (docs/operations.md §4): a closed stdout pipe or a
 * reader that stops reading never blocks serving or shutdown; lines are dropped and counted instead.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { ENV_VARIABLES } from '../src/config.js'
import { startSimulatedUpstream } from '../src/demo/simulated-upstream.js'
import { LogStream } from '../src/logging/log-stream.js'
import { ensureBuilt } from './helpers/built.js'

const ROOT = new URL('../', import.meta.url)
const MAIN = new URL('dist/src/main.js', ROOT).pathname
const KEY = 'sk-logstream-SECRET-51a0'

t.setTimeout(120_000)

// npm start runs the compiled output: compiled from the sources under test
t.before(ensureBuilt)

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

interface Child {
  child: ChildProcess
  base: string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** `npm start` as a process of its own, its stdout a pipe this test controls; resolves once /healthz answers */
async function startGateway(t: Test, env: Record<string, string>): Promise<Child> {
  const clean: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!ENV_VARIABLES.includes(k) && !k.startsWith('UPSTREAM_')) clean[k] = v
  const port = await freePort()
  const child = spawn(process.execPath, [MAIN], {
    env: { ...clean, UPSTREAM_API_KEY: KEY, HOST: '127.0.0.1', PORT: String(port), RATE_LIMIT_PER_MINUTE: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).status === 200) return { child, base, exited }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error('gateway did not answer /healthz')
}

/** many requests, each an access line (and a miss logs more): far more than a pipe holds (64 KiB) */
async function traffic(base: string, path: string, n: number): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, () => fetch(`${base}${path}`).then(async (r) => (await r.arrayBuffer(), r.status))))
    statuses.push(...batch)
  }
  return statuses
}

async function droppedLines(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  const m = /^mj_gateway_log_lines_dropped_total (\d+)$/m.exec(text)
  return m === null ? -1 : Number(m[1])
}

async function exitsWithin(run: Child, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'hung'> {
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)))
  const r = await Promise.race([run.exited, hung])
  clearTimeout(timer)
  return r
}

t.test('a gateway whose stdout pipe is closed keeps answering, counts the dropped lines, and exits 0 on SIGTERM', async (t) => {
  const sim = await startSimulatedUpstream({ apiKey: KEY, failureRatio: 0 })
  t.teardown(() => sim.close())
  const run = await startGateway(t, { UPSTREAM_BASE_URL: sim.url, LOG_LEVEL: 'info' })
  // the log reader goes away (a shipper restarting, `| head`)
  run.child.stdout?.destroy()
  const statuses = await traffic(run.base, `/mj/task/${sim.finishedTask()}/fetch`, 1200)
  t.ok(statuses.every((s) => s === 200), 'every request answered 200')
  t.equal((await fetch(`${run.base}/healthz`)).status, 200, 'still answering')
  // the access lines of the requests above cannot have been written (the metrics scrape itself may not be counted yet)
  t.ok((await droppedLines(run.base)) >= 1000, 'lines dropped are counted in mj_gateway_log_lines_dropped_total')
  run.child.kill('SIGTERM')
  t.same(await exitsWithin(run, 15_000), { code: 0, signal: null }, 'exits 0 on SIGTERM')
})

t.test('a gateway whose log reader stops reading keeps answering and exits 0 on SIGTERM', async (t) => {
  const sim = await startSimulatedUpstream({ apiKey: KEY, failureRatio: 0 })
  t.teardown(() => sim.close())
  const run = await startGateway(t, { UPSTREAM_BASE_URL: sim.url, LOG_LEVEL: 'info' })
  // the reader stops taking lines: the pipe fills up and stays full
  run.child.stdout?.pause()
  // long URLs make long access lines (~2 KB each): 1500 of them are more than the pipe and the 1 MiB backlog hold
  const statuses = await traffic(run.base, `/mj/no-such-route?pad=${'x'.repeat(1900)}`, 1500)
  t.ok(statuses.every((s) => s === 404), 'every request answered (404: no such route)')
  t.equal((await fetch(`${run.base}/mj/task/${sim.finishedTask()}/fetch`)).status, 200, 'and a task fetch too')
  t.equal((await fetch(`${run.base}/healthz`)).status, 200, 'still answering')
  t.ok((await droppedLines(run.base)) > 0, 'lines beyond the backlog bound are dropped and counted')
  run.child.kill('SIGTERM')
  t.same(await exitsWithin(run, 15_000), { code: 0, signal: null }, 'exits 0 on SIGTERM with the pipe still full')
})

/** a Writable whose reader takes a chunk only when the test says: writableLength is what waits for it */
function slowOut(): { out: Writable; release(): void } {
  const waiting: (() => void)[] = []
  const out = new Writable({
    write(_chunk: Buffer, _enc, cb) {
      waiting.push(cb)
    }
  })
  return { out, release: () => waiting.splice(0).forEach((cb) => cb()) }
}

t.test('LogStream: gathers lines into writes of the buffer size, flushes on its interval, drops beyond the backlog', async (t) => {
  const { out, release } = slowOut()
  const log = new LogStream(out, { bufferBytes: 20, flushMs: 20, backlogMaxBytes: 40 })
  t.teardown(() => log.close())
  log.write('aaaaaaaaa\n')
  t.equal(out.writableLength, 0, 'under the buffer size: gathered')
  log.write('bbbbbbbbb\n')
  t.equal(out.writableLength, 20, 'both lines handed on in one write')
  log.write('c\n')
  await new Promise((r) => setTimeout(r, 60))
  t.equal(out.writableLength, 22, 'the interval hands on a partial buffer')
  // the reader has taken nothing: 22 bytes wait, and 20 more would pass the bound of 40
  log.write('ddddddddd\n')
  log.write('eeeeeeeee\n')
  t.equal(log.dropped, 2, 'a write over the backlog bound is dropped, its lines counted')
  t.equal(out.writableLength, 22, 'and never queued')
  release()
  await new Promise((r) => setImmediate(r))
  t.equal(out.writableLength, 2, 'the reader took the first write')
  log.write('ffffffffffffffffffff\n')
  t.equal(out.writableLength, 23, 'once the reader catches up, lines flow again')
  log.flush()
  t.equal(out.writableLength, 23, 'nothing gathered: no write')
  release()
})

t.test('LogStream: after a write error (EPIPE) or once the stream is destroyed, every line is dropped and counted', async (t) => {
  const out = new Writable({
    write(_chunk, _enc, cb) {
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))
    }
  })
  const log = new LogStream(out, { bufferBytes: 1 })
  t.teardown(() => log.close())
  log.write('one\n')
  await new Promise((r) => setImmediate(r))
  log.write('two\n')
  log.write('three\n')
  t.equal(log.dropped, 2, 'no uncaught error, and the lines after it are counted as dropped')

  const gone = new Writable({ write: (_c, _e, cb) => cb() })
  gone.destroy()
  const log2 = new LogStream(gone, { bufferBytes: 1 })
  t.teardown(() => log2.close())
  log2.write('x\n')
  t.equal(log2.dropped, 1)
})
