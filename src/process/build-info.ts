import { readFileSync } from 'node:fs'

/** where package.json is from this file: src/process/ when run from sources, dist/src/process/ when compiled */
const CANDIDATES = ['../../package.json', '../../../package.json']

/** The gateway's version, from its package.json (the Docker image copies it beside dist/). */
function packageVersion(): string {
  for (const path of CANDIDATES) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'mj-gateway' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // not there: the next candidate
    }
  }
  /* c8 ignore next 2 -- package.json always ships with the code; this only keeps a broken install starting */
  return 'unknown'
}

export const VERSION = packageVersion()
