/**
 * Where the bench's processes run. On a machine of two or more CPUs, the server under test gets the last CPU to
 * itself, and the load generator (this process) and the simulated upstream share the others: otherwise the
 * scheduler moves them around, and a candidate's figure depends on where it happened to land as much as on its code.
 */
import { spawnSync } from 'node:child_process'
import { availableParallelism } from 'node:os'

export type Role = 'server' | 'outside'

const cpus = availableParallelism()
const hasTaskset = cpus >= 2 && spawnSync('taskset', ['-V']).status === 0

/** the CPU lists of the two roles, or undefined when the bench cannot pin (one CPU, or no taskset) */
export const pinning: Readonly<Record<Role, string>> | undefined = hasTaskset
  ? { server: String(cpus - 1), outside: cpus === 2 ? '0' : `0-${cpus - 2}` }
  : undefined

/** pins every thread of `pid` (and the threads it starts later) to its role's CPUs; a no-op without pinning */
export function pin(pid: number, role: Role): void {
  if (pinning !== undefined && pid > 0) spawnSync('taskset', ['-a', '-cp', pinning[role], String(pid)])
}

/** one line for a report's setup */
export function pinningNote(): string {
  return pinning === undefined
    ? 'Processes are not pinned to CPUs (taskset missing or one CPU).'
    : `The server under test runs alone on CPU ${pinning.server}; the load generator and the simulated upstream on CPU ${pinning.outside} (taskset).`
}
