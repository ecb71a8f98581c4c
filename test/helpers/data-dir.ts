/**
 * A fresh DATA_DIR per gateway, removed in teardown, and IMAGE_HOSTS narrowed to loopback: the fake upstream's
 * task bodies link to cdn.discordapp.com, and a test must never reach past 127.0.0.1 to archive them.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function isolatedDataEnv(t: { teardown(fn: () => unknown): void }): { DATA_DIR: string; IMAGE_HOSTS: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-data-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return { DATA_DIR: dir, IMAGE_HOSTS: '127.0.0.1' }
}

/** A fresh DATA_DIR alone (the embedded owner-record store lives there), removed in teardown. */
export function tempDataDir(t: { teardown(fn: () => unknown): void }): string {
  return isolatedDataEnv(t).DATA_DIR
}
