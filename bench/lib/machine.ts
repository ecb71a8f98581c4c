/** Facts about the run that make its figures interpretable: versions, machine, load. */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os'
import { createRequire } from 'node:module'
import { pinning, type Role } from './cpus.js'

const require = createRequire(import.meta.url)

function packageVersion(name: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version
  } catch {
    return undefined
  }
}

function gitCommit(): string | undefined {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    return dirty === '' ? commit : `${commit}+dirty`
  } catch {
    return undefined
  }
}

export interface MachineFacts {
  date: string
  commit: string | undefined
  node: string
  versions: Record<string, string | undefined>
  os: string
  cpu: string
  cores: number
  memoryBytes: number
  loadAverageAtStart: number[]
  /** CPUs of the server under test and of everything else (lib/cpus.ts); null when not pinned */
  pinning: Readonly<Record<Role, string>> | null
}

export function machineFacts(): MachineFacts {
  const c = cpus()
  return {
    date: new Date().toISOString(),
    commit: gitCommit(),
    node: process.version,
    versions: Object.fromEntries(
      ['fastify', 'undici', 'lru-cache', 'prom-client', 'pino', 'autocannon', '@fastify/http-proxy'].map((p) => [p, packageVersion(p)])
    ),
    os: `${osType()} ${release()}`,
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memoryBytes: totalmem(),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    pinning: pinning ?? null
  }
}
