/**
 * The repo explains itself (docs/README.md): these checks fail when the code grows something docs/ does not
 * describe, when a link in docs/ leads nowhere, when a comment or test title cites a docs section that does not
 * exist, or when README's code map and the files under src/ part ways.
 */
import t from 'tap'
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import { buildApp } from '../src/app.js'
import { ENV_VARIABLES, loadConfig } from '../src/config.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8')

/** files under `dir` (relative to the repo), recursively, whose name ends with one of `exts` */
function filesUnder(dir: string, exts: readonly string[]): string[] {
  const out: string[] = []
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = join(dir, name)
    if (statSync(join(ROOT, path)).isDirectory()) out.push(...filesUnder(path, exts))
    else if (exts.some((e) => name.endsWith(e))) out.push(path)
  }
  return out.sort()
}

const DOC_FILES = filesUnder('docs', ['.md'])
const ALL_DOCS = DOC_FILES.map(read).join('\n')

/** GitHub's heading anchor: lower case, punctuation but `-` and `_` dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replace(/ /g, '-')
}

function headings(markdown: string): string[] {
  return [...markdown.matchAll(/^#{1,6}\s+(.*)$/gm)].map((m) => m[1] as string)
}

/** the numbers of a docs file's `## n. Title` sections */
function sectionNumbers(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^## (\d+)\. /gm)].map((m) => m[1] as string))
}

t.test('docs/README.md indexes every file in docs/; numbered sections run 1, 2, 3 … without gaps or repeats', async (t) => {
  const index = read('docs/README.md')
  for (const file of DOC_FILES) {
    if (file === join('docs', 'README.md')) continue
    const name = relative('docs', file)
    t.ok(index.includes(`(${name})`) || index.includes(`docs/${name}`), `the index names ${name}`)
    const numbers = [...read(file).matchAll(/^## (\d+)\. /gm)].map((m) => Number(m[1]))
    t.same(numbers, numbers.map((_n, i) => i + 1), `${name}: sections numbered in order`)
  }
})

t.test('docs/configuration.md: every environment variable the gateway reads is described in docs/', async (t) => {
  t.ok(ENV_VARIABLES.length > 20)
  const missing = ENV_VARIABLES.filter((v) => !ALL_DOCS.includes(`\`${v}\``))
  t.same(missing, [], 'variables no docs/*.md file names in backticks (add them to your area\'s docs file)')
})

t.test('docs/errors.md §2: every MJGW_ code in src/ is described in docs/', async (t) => {
  const codes = new Set<string>()
  for (const file of filesUnder('src', ['.ts'])) for (const m of read(file).matchAll(/'(MJGW_[A-Z_]+)'/g)) codes.add(m[1] as string)
  t.ok(codes.size > 10, `found ${codes.size} codes`)
  const missing = [...codes].filter((code) => !ALL_DOCS.includes(`\`${code}\``))
  t.same(missing, [], 'error codes no docs/*.md file names in backticks (say when each is answered)')
})

t.test('docs/metrics.md: every mj_gateway_ metric /metrics exports (Redis on) is described in docs/', async (t) => {
  const config = loadConfig({ UPSTREAM_API_KEY: 'docs-check-key', REDIS_URL: 'redis://127.0.0.1:9' })
  const app = await buildApp(config, { logStream: new Writable({ write: (_c, _e, cb) => cb() }) })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  const names = new Set([...res.body.matchAll(/^# TYPE (mj_gateway_\w+) /gm)].map((m) => m[1] as string))
  t.ok(names.has('mj_gateway_redis_up'), 'the Redis metrics are among them')
  const missing = [...names].filter((name) => !ALL_DOCS.includes(`\`${name}\``))
  t.same(missing, [], 'metrics no docs/*.md file names in backticks (type, labels, meaning)')
})

t.test('docs/README.md: every relative link and anchor in docs/ and README.md resolves', async (t) => {
  const anchors = new Map<string, Set<string>>()
  const pages = [...DOC_FILES, 'README.md']
  for (const page of pages) anchors.set(normalize(page), new Set(headings(read(page)).map(anchorOf)))
  let links = 0
  for (const page of pages) {
    for (const m of read(page).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] as string
      if (/^[a-z]+:/.test(target)) continue
      links++
      const [path = '', fragment] = target.split('#')
      const file = path === '' ? normalize(page) : normalize(join(dirname(page), path))
      t.ok(existsSync(join(ROOT, file)), `${page}: ${target} exists`)
      if (fragment !== undefined && file.endsWith('.md')) t.ok(anchors.get(file)?.has(fragment), `${page}: ${target} names a heading`)
    }
  }
  t.ok(links > 50, `${links} links checked`)
})

t.test('docs/README.md: every docs section a comment or test title cites in src, test, bench or config exists', async (t) => {
  const sources = ['src', 'test', 'bench', 'config'].flatMap((d) => filesUnder(d, ['.ts', '.yml', '.yaml', '.json', '.env']))
  // files the index announces as being written ("… — added as it lands") may be cited before they exist
  const announced = new Set(
    read('docs/README.md')
      .split('\n')
      .filter((line) => line.includes('added as'))
      .flatMap((line) => [...line.matchAll(/docs\/[\w-]+\.md/g)].map((m) => m[0]))
  )
  let cited = 0
  for (const file of sources) {
    if (file === join('test', 'docs.test.ts')) continue
    for (const m of read(file).matchAll(/docs\/([\w-]+\.md)((?:\s*(?:,|\/|and|–)?\s*§\d+)*)/g)) {
      cited++
      const doc = `docs/${m[1] as string}`
      const exists = existsSync(join(ROOT, doc))
      t.ok(exists || announced.has(doc), `${file} cites ${doc}`)
      if (!exists) continue
      const numbers = sectionNumbers(read(doc))
      for (const n of (m[2] as string).matchAll(/§(\d+)/g)) t.ok(numbers.has(n[1] as string), `${file} cites ${doc} §${n[1] as string}`)
    }
  }
  t.ok(cited > 0, `${cited} citations checked`)
})

t.test('README.md: the code map names exactly the files under src/', async (t) => {
  const readme = read('README.md')
  const start = readme.indexOf('Code map, in the order a request travels')
  t.ok(start >= 0, 'README has a code map')
  const listed = new Set([...readme.slice(start).matchAll(/`(src\/[^`]+\.ts)`/g)].map((m) => m[1] as string))
  const files = filesUnder('src', ['.ts']).map((f) => f.split('\\').join('/'))
  t.same(
    files.filter((f) => !listed.has(f)),
    [],
    'files under src/ missing from README\'s code map (name each as `src/…` where the request meets it)'
  )
  t.same(
    [...listed].filter((f) => !files.includes(f)),
    [],
    'every file in the code map exists'
  )
})
