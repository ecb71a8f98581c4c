import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh DATA_DIR (the embedded owner-record store lives there) under the OS temp dir, removed in teardown. */
export function tempDataDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mjgw-data-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}
