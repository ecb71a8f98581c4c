/**
 * docs/compatibility.md, in a real browser: Debian's chromium (driven by playwright-core) loads a page from one
 * origin and calls the gateway on another the way the popular Vue midjourney-proxy frontend does — the token in
 * `mj-api-secret`, `Content-Type: application/json` even on GETs (so every call is preflighted), numeric ids in
 * list-by-condition — and reads the JSON body of every answer, errors included. A body the browser cannot read
 * (no CORS header on it) shows up as "Failed to fetch".
 */
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { chromium } from 'playwright-core'
import { taskBody } from '../src/demo/simulated-upstream.js'
import { startGateway } from './helpers/gateway.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'tok-browser-8e41b7c2a9'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

interface Seen {
  call: string
  status: number | undefined
  body: unknown
  /** what fetch() threw: the browser refused to hand the answer to the page */
  error?: string
}

if (!existsSync(CHROMIUM)) {
  console.error(`# browser-compat: SKIPPED, no chromium at ${CHROMIUM} (apt-get install chromium)`)
  t.pass(`skipped: no chromium at ${CHROMIUM}`)
} else {
  t.test('a page on another origin reads every answer of the gateway, as the Vue frontend calls it (real chromium)', async (t) => {
    t.setTimeout(120_000)
    // the page's own server: another port is another origin
    const page = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end('<!doctype html><title>mj frontend</title><p>frontend</p>')
    })
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => page.close(() => resolve())))
    const pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`

    const gw = await startGateway(t, { CORS_ORIGINS: pageOrigin, CLIENT_KEYS: `vue:${TOKEN}`, RATE_LIMIT_PER_MINUTE: '7', UPSTREAM_RETRIES: '0' })
    gw.upstream.setHandler((req) => {
      if (req.url === '/mj/submit/imagine') return { kind: 'json', body: { code: 1, description: 'Submit success', result: '1730621826053455' } }
      if (req.url === '/mj/task/list-by-condition') return { kind: 'json', body: [taskBody('1730621826053455', 'SUCCESS')] }
      if (req.url.includes('/BROKEN/')) return { kind: 'json', status: 500, body: { error: 'upstream broke' } }
      // 1730621826053455 is done; any other id still running (so the browser never caches it: cache-control no-cache)
      const id = /\/mj\/task\/(\d+)\/fetch/.exec(req.url)?.[1] ?? '0'
      return { kind: 'json', body: taskBody(id, id === '1730621826053455' ? 'SUCCESS' : 'IN_PROGRESS') }
    })

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
    t.teardown(() => browser.close())
    const tab = await browser.newPage()
    await tab.goto(`${pageOrigin}/`)

    const seen = await tab.evaluate(
      async ({ api, token }) => {
        // how the frontend calls midjourney-proxy: one helper, JSON content type on every method
        const mj = async (call: string, method: string, path: string, secret: string, body?: unknown): Promise<Seen> => {
          try {
            const res = await fetch(api + path, {
              method,
              headers: { 'Content-Type': 'application/json', 'mj-api-secret': secret },
              ...(body === undefined ? {} : { body: JSON.stringify(body) })
            })
            return { call, status: res.status, body: await res.json() }
          } catch (err) {
            return { call, status: undefined, body: undefined, error: String(err) }
          }
        }
        const out: Seen[] = []
        out.push(await mj('imagine', 'POST', '/mj/submit/imagine', token, { prompt: 'a cat', base64Array: [] }))
        out.push(await mj('fetch', 'GET', '/mj/task/1730621826053455/fetch', token))
        out.push(await mj('gallery', 'POST', '/mj/task/list-by-condition', token, { ids: [1730621826053455] }))
        out.push(await mj('unrouted', 'POST', '/mj/submit/swap_face', token, { sourceBase64: 'x' }))
        // the done task is now in the browser's HTTP cache (private, max-age): the rest ask for a running one
        out.push(await mj('bad token', 'GET', '/mj/task/1730621826053466/fetch', 'wrong-token'))
        out.push(await mj('upstream down', 'GET', '/mj/task/BROKEN/fetch', token))
        for (let i = 0; i < 4; i++) out.push(await mj('poll', 'GET', '/mj/task/1730621826053466/fetch', token))
        return out
      },
      { api: gw.url, token: TOKEN }
    )
    const by = (call: string): Seen[] => seen.filter((s) => s.call === call)
    const failed = seen.filter((s) => s.error !== undefined)
    t.same(failed, [], 'no answer was hidden from the page ("Failed to fetch")')

    t.match(by('imagine')[0], { status: 200, body: { code: 1, result: '1730621826053455' } })
    t.match(by('fetch')[0], { status: 200, body: { id: '1730621826053455', status: 'SUCCESS' } })
    t.match(by('gallery')[0], { status: 200, body: [{ id: '1730621826053455' }] }, 'numeric ids in list-by-condition')
    t.match(by('unrouted')[0], { status: 404, body: { statusCode: 404, code: 'MJGW_NOT_FOUND', error: 'Not Found' } })
    t.match(by('bad token')[0], { status: 401, body: { statusCode: 401, code: 'MJGW_UNAUTHORIZED', error: 'Unauthorized' } })
    t.match(by('upstream down')[0], { status: 502, body: { statusCode: 502, code: 'MJGW_UPSTREAM_ERROR', error: 'Bad Gateway' } })
    const polls = by('poll')
    t.match(polls.at(-1), { status: 429, body: { statusCode: 429, code: 'MJGW_RATE_LIMITED', error: 'Too Many Requests' } }, 'over the limit')
    t.ok(polls.some((p) => p.status === 200), 'polls within the limit were served')
    t.ok(gw.upstream.calls >= 3, 'the calls really went through the gateway')
  })
}
