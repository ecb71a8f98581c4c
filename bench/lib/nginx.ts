/**
 * nginx with proxy_cache in front of the simulated upstream, 1 worker: the hit path's outside peer.
 * Optional: when no nginx binary is found, the row is skipped and the report says so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { pin } from './cpus.js'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { procCpuSeconds } from './child.js'
import { freePort } from './ports.js'

export interface Nginx {
  readonly url: string
  readonly version: string
  cpuSeconds(): number | undefined
  stop(): Promise<void>
}

export function findNginx(): string | undefined {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx', '/opt/homebrew/bin/nginx']) {
    if (existsSync(candidate)) return candidate
  }
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' })
  const found = which.stdout.trim()
  return which.status === 0 && found !== '' ? found : undefined
}

function config(prefix: string, port: number, upstreamPort: number, apiKey: string): string {
  return `daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  proxy_cache_path ${prefix}/cache levels=1:2 keys_zone=mj:32m max_size=1g inactive=1h use_temp_path=off;
  upstream sim {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location /mj/task/ {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${apiKey}";
      proxy_set_header Cookie "";
      proxy_cache mj;
      proxy_cache_key $uri;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      add_header x-cache $upstream_cache_status;
      add_header cache-control "private, max-age=3599";
    }
  }
}
`
}

/** nginx's own CPU: the master plus its worker(s) (undefined when /proc cannot tell). */
export function treeCpu(pid: number): number | undefined {
  let total = procCpuSeconds(pid)
  if (total === undefined) return undefined
  try {
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
      if (child !== '') total += procCpuSeconds(Number(child)) ?? 0
    }
  } catch {
    return undefined
  }
  return total
}

export async function startNginx(bin: string, upstreamPort: number, apiKey: string): Promise<Nginx> {
  const version = spawnSync(bin, ['-v'], { encoding: 'utf8' }).stderr.trim().replace(/^nginx version: /, '')
  const prefix = mkdtempSync(join(tmpdir(), 'mjgw-bench-nginx-'))
  for (const d of ['cache', 'tmp']) mkdirSync(join(prefix, d))
  // run as root, nginx's workers drop to an unprivileged user that must still write the cache
  for (const d of ['', 'cache', 'tmp']) chmodSync(join(prefix, d), 0o777)
  const port = await freePort()
  writeFileSync(join(prefix, 'nginx.conf'), config(prefix, port, upstreamPort, apiKey))
  const proc: ChildProcess = spawn(bin, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe']
  })
  // the master forks its worker after reading the config: pinned now, the worker inherits the CPU
  pin(proc.pid ?? 0, 'server')
  let stderr = ''
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 10_000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${stderr.trim()}`)
    try {
      await fetch(`${url}/nginx-ready`)
      break
    } catch {
      if (Date.now() > deadline) throw new Error(`nginx did not start: ${stderr.trim()}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    url,
    version,
    cpuSeconds: () => treeCpu(proc.pid ?? 0),
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGQUIT')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      rmSync(prefix, { recursive: true, force: true })
    }
  }
}
