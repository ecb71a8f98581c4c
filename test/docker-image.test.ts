/** The runtime image holds the gateway and nothing of the benchmark (dist/bench, bench/). */
import { readFileSync } from 'node:fs'
import t from 'tap'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')

t.test('Dockerfile and .dockerignore: no bench in the build context, the build or the runtime image', async (t) => {
  const copies = read('Dockerfile')
    .split('\n')
    .filter((l) => /^COPY\s/.test(l))
  t.ok(copies.length > 0)
  for (const line of copies) t.notMatch(line, /bench/, line)
  const runtime = read('Dockerfile').split(/^FROM /m).at(-1) ?? ''
  t.match(runtime, /^COPY --from=build \/app\/dist\/src \.\/dist\/src$/m, 'only the compiled gateway')
  const admitted = read('.dockerignore')
    .split('\n')
    .filter((l) => l.startsWith('!'))
  t.notOk(admitted.some((l) => l.includes('bench')), 'bench/ stays out of the build context')
})
