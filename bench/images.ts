/**
 * `npm run bench:images`: serving an archived image, the gateway against nginx serving the same file from disk
 * with sendfile, side by side in one run (rounds interleaved, medians), and the gateway's memory as images grow.
 *
 *   node dist/bench/images.js [--quick]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pngBytes } from '../src/demo/png.js'
import { pin, pinningNote } from './lib/cpus.js'
import { median } from './lib/load.js'
import { findNginx, treeCpu } from './lib/nginx.js'
import { freePort } from './lib/ports.js'
import { procCpuSeconds } from './lib/child.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 2 : 4
const SECONDS = quick ? 2 : 5
const CONNECTIONS = 16
const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url))
const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url))
const MiB = 1 << 20

interface Measurement {
  rps: number
  p99: number
  errors: number
  serverCpu: number | undefined
}

/**
 * A load client that only counts body bytes: autocannon parses every body in JavaScript and, on one CPU, tops out
 * far below what either server sends (megabytes per response). Keep-alive connections, one request at a time each.
 */
async function bulkLoad(target: { url: string; cpuSeconds(): number | undefined }, connections: number, seconds: number): Promise<Measurement> {
  const url = new URL(target.url)
  const request = Buffer.from(`GET ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\n\r\n`)
  const latencies: number[] = []
  let errors = 0
  const cpu0 = target.cpuSeconds()
  const t0 = performance.now()
  const deadline = t0 + seconds * 1000
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = connect(Number(url.port), url.hostname)
      let head = Buffer.alloc(0)
      let remaining = -1
      let started = 0
      const next = (): void => {
        if (performance.now() >= deadline) {
          socket.destroy()
          return resolve()
        }
        head = Buffer.alloc(0)
        remaining = -1
        started = performance.now()
        socket.write(request)
      }
      socket.on('connect', next)
      socket.on('error', () => {
        errors++
        resolve()
      })
      socket.on('data', (chunk: Buffer) => {
        let body = chunk
        if (remaining < 0) {
          head = Buffer.concat([head, chunk])
          const end = head.indexOf('\r\n\r\n')
          if (end < 0) return
          const text = head.subarray(0, end).toString('latin1')
          if (!text.startsWith('HTTP/1.1 200')) errors++
          remaining = Number(/content-length:\s*(\d+)/i.exec(text)?.[1] ?? '0')
          body = head.subarray(end + 4)
        }
        remaining -= body.length
        if (remaining <= 0) {
          latencies.push(performance.now() - started)
          next()
        }
      })
    })
  await Promise.all(Array.from({ length: connections }, one))
  const elapsed = (performance.now() - t0) / 1000
  const cpu1 = target.cpuSeconds()
  latencies.sort((a, b) => a - b)
  return {
    rps: latencies.length / elapsed,
    p99: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? NaN,
    errors,
    serverCpu: cpu0 === undefined || cpu1 === undefined ? undefined : (cpu1 - cpu0) / elapsed
  }
}

/** a valid PNG header followed by random bytes up to `size` (what matters here is the byte count) */
function imageOf(size: number): Buffer {
  const head = pngBytes(4, 4, size)
  return Buffer.concat([head, randomBytes(size - head.length)])
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1])
}

/** upstream and CDN in one: task i's imageUrl is /img/i.png, served from `images` */
async function startOrigin(images: Map<string, Buffer>): Promise<{ url: string; server: Server }> {
  const server = createHttpServer((req, res) => {
    const url = req.url ?? '/'
    const task = /^\/mj\/task\/([\w-]+)\/fetch$/.exec(url)
    if (task !== null) {
      const id = task[1] as string
      const ex = Math.floor(Date.now() / 1000 + 86_400).toString(16)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ id, status: 'SUCCESS', progress: '100%', imageUrl: `${origin}/img/${id}.png?ex=${ex}` }))
      return
    }
    const img = /^\/img\/([\w-]+)\.png/.exec(url)
    const bytes = img === null ? undefined : images.get(img[1] as string)
    if (bytes === undefined) {
      res.writeHead(404)
      res.end()
      return
    }
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': bytes.length })
    res.end(bytes)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const a = server.address()
  const origin = `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`
  return { url: origin, server }
}

async function waitUp(url: string, proc: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 15_000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${what} exited`)
    try {
      await fetch(url)
      return
    } catch {
      if (Date.now() > deadline) throw new Error(`${what} did not start`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

async function stop(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null) return
  const exited = new Promise((r) => proc.once('exit', r))
  proc.kill(signal)
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

async function startNginx(bin: string, root: string): Promise<{ url: string; proc: ChildProcess; prefix: string }> {
  const prefix = mkdtempSync(join(tmpdir(), 'mjgw-bench-img-nginx-'))
  mkdirSync(join(prefix, 'tmp'))
  for (const d of ['', 'tmp']) chmodSync(join(prefix, d), 0o777)
  const port = await freePort()
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  types { image/png png; }
  server {
    listen 127.0.0.1:${port};
    location /img/ {
      root ${root};
      etag on;
      add_header cache-control "private, max-age=31536000, immutable";
    }
  }
}
`
  )
  const proc = spawn(bin, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')], { stdio: 'ignore' })
  pin(proc.pid ?? 0, 'server')
  const url = `http://127.0.0.1:${port}`
  await waitUp(url, proc, 'nginx')
  return { url, proc, prefix }
}

interface Row {
  name: string
  rps: number
  mibps: number
  p99: number
  cpu: number | undefined
  errors: number
}

function summarize(name: string, runs: Measurement[], size: number): Row {
  const rps = median(runs.map((r) => r.rps))
  return {
    name,
    rps,
    mibps: (rps * size) / MiB,
    p99: median(runs.map((r) => r.p99)),
    cpu: median(runs.map((r) => r.serverCpu ?? NaN)),
    errors: runs.reduce((n, r) => n + r.errors, 0)
  }
}

async function main(): Promise<void> {
  pin(process.pid, 'outside')
  const sizes = [256 * 1024, 2 * MiB, 8 * MiB]
  const images = new Map(sizes.map((s) => [`img${s}`, imageOf(s)]))
  const origin = await startOrigin(images)
  const dataDir = mkdtempSync(join(tmpdir(), 'mjgw-bench-img-data-'))
  const port = await freePort()
  const gatewayUrl = `http://127.0.0.1:${port}`
  const gw = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env['PATH'] ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      UPSTREAM_BASE_URL: origin.url,
      UPSTREAM_API_KEY: 'bench-upstream-key',
      RATE_LIMIT_PER_MINUTE: '0',
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      IMAGE_HOSTS: '127.0.0.1',
      EVENT_LOOP_MAX_DELAY_MS: '0'
    },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  pin(gw.pid ?? 0, 'server')
  await waitUp(`${gatewayUrl}/healthz`, gw, 'gateway')
  const rssStart = rssKiB(gw.pid ?? 0)

  // archive every image once, then give nginx the very files the gateway serves
  const webRoot = mkdtempSync(join(tmpdir(), 'mjgw-bench-img-root-'))
  mkdirSync(join(webRoot, 'img'))
  for (const id of images.keys()) {
    const r = await fetch(`${gatewayUrl}/mj/image/${id}`)
    if (r.status !== 200) throw new Error(`gateway answered ${r.status} for ${id}`)
    await r.arrayBuffer()
    const hash = (r.headers.get('etag') ?? '').replace(/"/g, '')
    copyFileSync(join(dataDir, 'images', 'blobs', hash.slice(0, 2), hash), join(webRoot, 'img', `${id}.png`))
  }
  chmodSync(webRoot, 0o755)
  for (const d of [join(webRoot, 'img'), ...readdirSync(join(webRoot, 'img')).map((f) => join(webRoot, 'img', f))]) chmodSync(d, 0o755)

  const bin = findNginx()
  const nginx = bin === undefined ? undefined : await startNginx(bin, webRoot)
  const gwTarget = (id: string) => ({ url: `${gatewayUrl}/mj/image/${id}`, cpuSeconds: () => procCpuSeconds(gw.pid ?? 0) })
  const ngTarget = (id: string) => ({ url: `${nginx?.url}/img/${id}.png`, cpuSeconds: () => treeCpu(nginx?.proc.pid ?? 0) })

  const lines: string[] = []
  const out = (s: string): void => {
    console.log(s)
    lines.push(s)
  }
  out(`mj-gateway image bench (${quick ? 'quick' : 'full'}): node ${process.version}, ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${SECONDS} s, medians`)
  out(pinningNote())
  out('')
  out('| image | server | req/s | MiB/s | p99 ms | server CPU | gateway RSS after (MiB) | non-200/errors |')
  out('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  const ratios: Array<{ size: number; rps: number | undefined; p99: number | undefined }> = []
  for (const size of sizes) {
    const id = `img${size}`
    const g: Measurement[] = []
    const n: Measurement[] = []
    for (let round = 0; round < ROUNDS; round++) {
      g.push(await bulkLoad(gwTarget(id), CONNECTIONS, SECONDS))
      if (nginx !== undefined) n.push(await bulkLoad(ngTarget(id), CONNECTIONS, SECONDS))
    }
    const rss = rssKiB(gw.pid ?? 0) / 1024
    const gr = summarize('gateway', g, size)
    const label = `${size / 1024} KiB`
    out(`| ${label} | gateway | ${gr.rps.toFixed(0)} | ${gr.mibps.toFixed(0)} | ${gr.p99.toFixed(1)} | ${gr.cpu === undefined ? '?' : (gr.cpu * 100).toFixed(0) + ' %'} | ${rss.toFixed(0)} | ${gr.errors} |`)
    if (nginx !== undefined) {
      const nr = summarize('nginx', n, size)
      out(`| ${label} | nginx (sendfile) | ${nr.rps.toFixed(0)} | ${nr.mibps.toFixed(0)} | ${nr.p99.toFixed(1)} | ${nr.cpu === undefined ? '?' : (nr.cpu * 100).toFixed(0) + ' %'} | — | ${nr.errors} |`)
      ratios.push({ size, rps: gr.rps / nr.rps, p99: gr.p99 / nr.p99 })
    }
  }
  out('')
  out(`gateway RSS: ${(rssStart / 1024).toFixed(0)} MiB at start, ${(rssKiB(gw.pid ?? 0) / 1024).toFixed(0)} MiB at the end`)
  for (const r of ratios) {
    const met = r.rps !== undefined && r.rps >= 0.8
    out(`${r.size / 1024} KiB: gateway/nginx throughput ${r.rps?.toFixed(2)}× (goal ≥ 0.8×: ${met ? 'met' : 'missed'}), p99 ${r.p99?.toFixed(2)}× nginx's`)
  }
  if (nginx === undefined) out('nginx not found: no baseline row')
  mkdirSync(RESULTS, { recursive: true })
  writeFileSync(join(RESULTS, quick ? 'images-quick.md' : 'images.md'), `_${new Date().toISOString().slice(0, 10)}_\n\n${lines.join('\n')}\n`)

  await stop(gw, 'SIGTERM')
  if (nginx !== undefined) {
    await stop(nginx.proc, 'SIGQUIT')
    rmSync(nginx.prefix, { recursive: true, force: true })
  }
  origin.server.closeAllConnections()
  origin.server.close()
  rmSync(dataDir, { recursive: true, force: true })
  rmSync(webRoot, { recursive: true, force: true })
  spawnSync('true')
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('image bench failed:', err)
    process.exit(1)
  }
)
