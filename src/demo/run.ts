/**
 * `npm run demo`: the gateway in front of the built-in simulated upstream, no key and no network.
 * Prints ready-to-paste curl lines. Ctrl-C closes both and exits 0.
 */
import { buildApp } from '../app.js'
import { loadConfig, type Config } from '../config.js'
import { passthroughEnabled } from '../routes/passthrough.js'
import { startSimulatedUpstream } from './simulated-upstream.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const DEMO_UPSTREAM_KEY = 'demo-upstream-key'
const DEMO_CLIENT_KEYS = 'demo:demo-client-token'

const authStyle = process.env.UPSTREAM_AUTH_STYLE === 'mj-api-secret' ? 'mj-api-secret' : 'bearer'
// tasks submitted through the demo always succeed, so the upscale line after them works; the FAILURE example is made below
// 200 ms per upstream answer, like a real relay: pollers that arrive together visibly share one call (COALESCED)
const DEMO_UPSTREAM_LATENCY_MS = 200
// serveImages: the simulated CDN answers image links (real PNGs) until their ex= passes, so the archive has work
const sim = await startSimulatedUpstream({
  apiKey: DEMO_UPSTREAM_KEY,
  authStyle,
  failureRatio: 0,
  recordRequests: false,
  latencyMs: DEMO_UPSTREAM_LATENCY_MS,
  serveImages: true
})

let config: Config
try {
  config = loadConfig({
    ...process.env,
    UPSTREAM_BASE_URL: sim.url,
    UPSTREAM_API_KEY: DEMO_UPSTREAM_KEY,
    HOST: process.env.HOST ?? '127.0.0.1',
    CLIENT_KEYS: process.env.CLIENT_KEYS ?? DEMO_CLIENT_KEYS,
    // Client tokens turn ownership on (TASK_OWNERSHIP=auto, docs/tenancy.md §2), and it stays on: what is submitted
    // through the gateway below is the submitter's alone. But the example tasks printed below are made in the simulated
    // upstream directly, like tasks submitted before the gateway: without an owner record, OWNERLESS_TASKS=hidden
    // (the default) would answer every curl line about them 404. The demo shows them to everyone instead.
    OWNERLESS_TASKS: process.env.OWNERLESS_TASKS ?? 'visible',
    // keep the banner readable; LOG_LEVEL=info shows one JSON line per request
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    // the simulated CDN is the simulated upstream itself; the archive goes to a temp directory unless DATA_DIR says
    IMAGE_HOSTS: process.env.IMAGE_HOSTS ?? new URL(sim.url).hostname,
    DATA_DIR: process.env.DATA_DIR ?? join(tmpdir(), 'mj-gateway-demo')
  })
} catch (err) {
  await sim.close()
  // loadConfig throws only ConfigError: one line naming the variable
  console.error((err as Error).message)
  process.exit(1)
}

const app = await buildApp(config)
let base: string
try {
  // Fastify's own idea of where to reach it: 0.0.0.0 becomes 127.0.0.1, an IPv6 host gets its brackets
  base = await app.listen({ port: config.port, host: config.host })
} catch (err) {
  await app.close().catch(() => undefined)
  await sim.close()
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    console.error(`Port ${config.port} on ${config.host} is already in use: set PORT to a free port, e.g. PORT=8081 npm run demo`)
  } else {
    console.error(err)
  }
  process.exit(1)
}

let closing = false
const shutdown = (signal: string): void => {
  if (closing) return
  closing = true
  console.log(`\n${signal}: closing the gateway and the simulated upstream`)
  Promise.allSettled([app.close()])
    .then(() => sim.close())
    .finally(() => process.exit(0))
}
process.once('SIGINT', () => shutdown('SIGINT'))
process.once('SIGTERM', () => shutdown('SIGTERM'))

const usingDemoToken = process.env.CLIENT_KEYS === undefined
const auth =
  config.clientKeys.length === 0 ? '' : usingDemoToken ? ` -H 'Authorization: Bearer demo-client-token'` : ` -H "Authorization: Bearer $MJGW_TOKEN"`
const metricsAuth = config.metricsToken === '' ? '' : ` -H "Authorization: Bearer $METRICS_TOKEN"`
const submitOn = passthroughEnabled(config)

const live = sim.createTask({ prompt: 'a red fox in fresh snow, golden hour --v 6.1', outcome: 'SUCCESS' })
const failing = sim.createTask({ prompt: 'a forbidden prompt --v 6.1', outcome: 'FAILURE' })
const stuck = sim.createTask({ prompt: 'a slow render of a glacier --v 6.1', outcome: 'never' })
const finished = sim.finishedTask({ outcome: 'SUCCESS' })
const fetchUrl = (id: string): string => `${base}/mj/task/${id}/fetch`
// finished ~2 minutes ago; its image link dies about half a minute from now. One fetch now, and the gateway archives it.
const fading = sim.finishedTask({ outcome: 'SUCCESS', imageLinkTtlSeconds: 150 })
const demoToken = config.clientKeys[0]?.token
// not awaited: the banner is printed at once, the fetch (and the archive behind it) finish meanwhile
void fetch(fetchUrl(fading), { headers: demoToken === undefined ? {} : { authorization: `Bearer ${demoToken}` } })
  .then((r) => r.arrayBuffer())
  .catch(() => undefined)

const lines = [
  '',
  `mj-gateway demo: gateway on ${base}, simulated upstream on ${sim.url} (tasks finish ~4-6 s after submit)`,
  usingDemoToken || config.clientKeys.length === 0 ? '' : 'Client tokens come from CLIENT_KEYS: export MJGW_TOKEN=<one of them> first.',
  '',
  '# a task submitted at start-up that SUCCEEDS ~5 s later: poll it (x-cache MISS, HIT within POLL_CACHE_MS, then the cached terminal)',
  `curl -i ${fetchUrl(live)}${auth}`,
  // every 0.25 s, well inside POLL_CACHE_MS (1 s): a MISS, then HITs from the poll cache, until SUCCESS is cached for good
  `for i in $(seq 1 28); do curl -s -D - ${fetchUrl(live)}${auth} | grep -Eio '^x-cache: [A-Z]+|"status":"[A-Z_]*"|"progress":"[0-9]*%"' | tr '\\n' ' '; echo; sleep 0.25; done`,
  '# three pollers at once on a live task: one MISS, the others COALESCED onto its upstream call (or all HIT within POLL_CACHE_MS)',
  `for n in 1 2 3; do curl -s -o /dev/null -D - ${fetchUrl(stuck)}${auth} | grep -i '^x-cache' & done; wait`,
  '',
  '# a task that will end in FAILURE, and one that stays IN_PROGRESS forever',
  `curl -i ${fetchUrl(failing)}${auth}`,
  `curl -i ${fetchUrl(stuck)}${auth}`,
  '',
  '# an already finished task: the first fetch is a MISS, the second a HIT',
  `curl -s -o /dev/null -D - ${fetchUrl(finished)}${auth} | grep -Ei '^(x-cache|etag|cache-control)'`,
  `curl -s -o /dev/null -D - ${fetchUrl(finished)}${auth} | grep -Ei '^(x-cache|etag|cache-control)'`,
  '',
  '# conditional request: 304 Not Modified with the current etag',
  `ETAG=$(curl -s -o /dev/null -D - ${fetchUrl(finished)}${auth} | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\\r'); curl -i ${fetchUrl(finished)}${auth} -H "If-None-Match: $ETAG"`,
  '',
  '# push instead of poll: one line per change of the task above, until SUCCESS and `event: end` (server-sent events)',
  `curl -sN ${base}/mj/task/${live}/events${auth} | grep -Eo '^event: [a-z]+|"status":"[A-Z_]*"|"progress":"[0-9]*%'`,
  '',
  '# a malformed id (400, never reaches upstream) and an unknown id (404)',
  `curl -i ${base}/mj/task/not.a.valid.id/fetch${auth}`,
  `curl -i ${fetchUrl('1700000000000999')}${auth}`,
  ''
]
if (submitOn) {
  lines.push(
    '# submit a new task through the gateway, then poll its id until it is finished and served from the cache (x-cache: HIT)',
    `ID=$(curl -s -X POST ${base}/mj/submit/imagine${auth} -H 'content-type: application/json' -d '{"prompt":"a lighthouse at dusk --v 6.1"}' | sed -E 's/.*"result":"([^"]+)".*/\\1/'); echo "task $ID"`,
    `for i in $(seq 1 28); do curl -s -D - ${base}/mj/task/$ID/fetch${auth} | grep -Eio '^x-cache: [A-Z]+|"status":"[A-Z_]*"|"progress":"[0-9]*%"' | tr '\\n' ' '; echo; sleep 0.25; done`,
    '',
    '# or, instead of polling, a line per change until SUCCESS (server-sent events)',
    `LIVE=$(curl -s -X POST ${base}/mj/submit/imagine${auth} -H 'content-type: application/json' -d '{"prompt":"a kite over dunes --v 6.1"}' | sed -E 's/.*"result":"([^"]+)".*/\\1/'); curl -sN ${base}/mj/task/$LIVE/events${auth} | grep -Eo '^event: [a-z]+|"status":"[A-Z_]*"|"progress":"[0-9]*%'`,
    '',
    '# once it SUCCEEDED: upscale image 1 (submit/action with a button customId), and read its seed',
    `CUSTOM=$(curl -s ${base}/mj/task/$ID/fetch${auth} | grep -o 'MJ::JOB::upsample::1::[^"]*'); curl -s -X POST ${base}/mj/submit/action${auth} -H 'content-type: application/json' -d "{\\"taskId\\":\\"$ID\\",\\"customId\\":\\"$CUSTOM\\"}"; echo`,
    `curl -s ${base}/mj/task/$ID/image-seed${auth}; echo`,
    '',
    '# several tasks in one call: finished ones come from the cache (x-cache-hits), the rest from one upstream call, unknown ids left out',
    `curl -s -D - -X POST ${base}/mj/task/list-by-condition${auth} -H 'content-type: application/json' -d "{\\"ids\\":[\\"$ID\\",\\"${finished}\\",\\"${live}\\",\\"${stuck}\\",\\"1700000000000999\\"]}" | grep -Eio '^x-cache-hits: [0-9]+|"id":"[0-9]+"|"status":"[A-Z_]*"' | tr '\\n' ' '; echo`,
    '',
    '# every other /mj path is 404, above all the task list (under the shared key it would list every team\'s tasks)',
    `curl -i ${base}/mj/task/list${auth}`,
    ''
  )
} else {
  lines.push('# submit routes are off (PASSTHROUGH=auto turns them on only when CLIENT_KEYS is set)', '')
}
lines.push(
  '# images (docs/images.md): the task below was fetched at start-up, so its image is archived; its CDN link dies ~30 s after start',
  `LINK=$(curl -s ${fetchUrl(fading)}${auth} | sed -E 's/.*"imageUrl":"([^"]+)".*/\\1/'); echo "$LINK"`,
  `curl -s -o /dev/null -w 'the CDN link answers %{http_code}\\n' "$LINK"`,
  `curl -s -o /dev/null -D - ${base}/mj/image/${fading}${auth} | grep -Ei '^(HTTP|content-type|content-length|etag|cache-control)'`,
  `curl -s ${base}/mj/image/${fading}${auth} -o demo-image.png && file demo-image.png`,
  '# ...and again after the link died: the CDN answers 404, the gateway still serves the image from its archive',
  `sleep 30; curl -s -o /dev/null -w 'the CDN link answers %{http_code}\\n' "$LINK"; curl -s -o /dev/null -w 'the gateway answers %{http_code}\\n' ${base}/mj/image/${fading}${auth}`,
  `curl -s ${base}/metrics${metricsAuth} | grep -E '^mj_gateway_image'`,
  '',
  '# health, readiness and metrics',
  `curl -s ${base}/healthz`,
  `curl -s ${base}/readyz`,
  `curl -s ${base}/metrics${metricsAuth} | grep mj_gateway_cache`,
  '',
  'Ctrl-C stops the demo.'
)
console.log(lines.filter((l, i) => l !== '' || lines[i - 1] !== '').join('\n'))
