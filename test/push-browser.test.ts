import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { chromium } from 'playwright-core'
import { pushGateway } from './helpers/task-world.js'
import { waitFor } from './helpers/net.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'browser-TOKEN-2f7a'

const PAGE = `<!doctype html><meta charset="utf-8"><title>push</title><script>
window.seen = []
window.ended = false
window.subscribe = (url) => {
  const es = new EventSource(url)
  es.addEventListener('task', (e) => { const task = JSON.parse(e.data); window.seen.push([task.id, task.status, task.progress]) })
  es.addEventListener('end', () => { window.ended = true; es.close() })
  es.addEventListener('error', () => { window.seen.push(['error', es.readyState]) })
}
</script>`

const skip = existsSync(CHROMIUM) ? false : `chromium is not installed at ${CHROMIUM}: the browser test did not run`

t.test('docs/push.md §3: a page on another origin subscribes with EventSource to three tasks, sees every status change in order, then end', { skip }, async (t) => {
  const site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE))
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => site.close(resolve)))
  const origin = `http://localhost:${(site.address() as AddressInfo).port}`
  const { gw, world } = await pushGateway(t, { REFRESH_INTERVAL_MS: '100', CORS_ORIGINS: origin, CLIENT_KEYS: `web:${TOKEN}` })
  const ids = ['b1', 'b2', 'b3']
  for (const id of ids) world.set(id, 'SUBMITTED', { progress: '0%' })

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.goto(`${origin}/`)
  await page.evaluate((url) => (globalThis as unknown as { subscribe(u: string): void }).subscribe(url), `${gw.url}/mj/tasks/events?ids=${ids.join(',')}&token=${TOKEN}`)

  const seen = async (): Promise<string[][]> => page.evaluate(() => (globalThis as unknown as { seen: string[][] }).seen)
  const steps: Array<[string, string]> = [
    ['IN_PROGRESS', '30%'],
    ['IN_PROGRESS', '70%'],
    ['SUCCESS', '100%']
  ]
  await waitFor(async () => (await seen()).length >= 3, 10_000)
  for (const [status, progress] of steps) {
    for (const id of ids) {
      world.set(id, status, { progress })
      const before = (await seen()).length
      await waitFor(async () => (await seen()).length > before, 10_000)
    }
  }
  await waitFor(() => page.evaluate(() => (globalThis as unknown as { ended: boolean }).ended), 10_000)
  const events = await seen()
  for (const id of ids) {
    t.same(
      events.filter((e) => e[0] === id).map((e) => `${e[1]} ${e[2]}`),
      ['SUBMITTED 0%', 'IN_PROGRESS 30%', 'IN_PROGRESS 70%', 'SUCCESS 100%'],
      `${id}: every change, in order`
    )
  }
  t.equal(events.length, 12, 'nothing twice, no error')
  t.notOk(gw.logs().includes(TOKEN))
})
