/**
 * Tests that start `npm start` or `npm run demo` run the compiled output (dist/): this makes sure it is compiled from
 * the sources under test. CI builds first; a developer's run may not have.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'

const ROOT = new URL('../../', import.meta.url).pathname
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc')

/** dist is stale when a source file is newer than its compiled output */
function distIsStale(dir = join(ROOT, 'src')): boolean {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (distIsStale(path)) return true
    } else if (entry.name.endsWith('.ts')) {
      const out = join(ROOT, 'dist', relative(ROOT, path).replace(/\.ts$/, '.js'))
      if (!existsSync(out) || statSync(out).mtimeMs < statSync(path).mtimeMs) return true
    }
  }
  return false
}

/** compiles src/ into dist/ when dist is stale */
export async function ensureBuilt(): Promise<void> {
  if (distIsStale()) await promisify(execFile)(process.execPath, [TSC, '-p', 'tsconfig.build.json'], { cwd: ROOT })
}
