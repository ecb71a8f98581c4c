import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { chromium } from 'playwright-core'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { isolatedDataEnv } from './helpers/data-dir.js'
import { idFromUrl, startSimulatedUpstream, taskBody } from '../src/demo/simulated-upstream.js'
import { UPSTREAM_KEY } from './helpers/gateway.js'
import { exIn, startImageCdn } from './helpers/image-cdn.js'
import { pngBytes } from '../src/demo/png.js'

const TOKEN = 'browser-client-token-SECRET'

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

t.test('docs/images.md: a page on another origin shows a task image through IMAGE_REWRITE=on (chromium)', async (t) => {
  const image = pngBytes(40, 30, 11)
  const cdn = await startImageCdn(() => ({ kind: 'image', bytes: image }))
  t.teardown(() => cdn.close())
  const upstream = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => upstream.close())
  upstream.setHandler((req) => {
    const id = idFromUrl(req.url) ?? 'x'
    return { kind: 'json', body: taskBody(id, 'SUCCESS', { imageUrl: `${cdn.url}/img/${id}.png?ex=${exIn(86_400)}&is=0&hm=0&` }) }
  })

  // the frontend: a page on its own origin that polls the task and shows imageUrl, as an unchanged frontend does
  const page = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(`<!doctype html><html><body><img id="art" alt="task image"><script>
      const gateway = new URL(location.href).searchParams.get('gw')
      fetch(gateway + '/mj/task/web1/fetch', { headers: { authorization: 'Bearer ${TOKEN}' } })
        .then((r) => r.json())
        .then((task) => { document.getElementById('art').src = task.imageUrl; window.taskImageUrl = task.imageUrl })
        .catch((e) => { window.failed = String(e) })
    </script></body></html>`)
  })
  await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => page.close(() => resolve())))
  const pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`

  const port = await freePort()
  const gatewayUrl = `http://127.0.0.1:${port}`
  const config = loadConfig({
    UPSTREAM_API_KEY: UPSTREAM_KEY,
    UPSTREAM_BASE_URL: upstream.url,
    LOG_LEVEL: 'silent',
    ...isolatedDataEnv(t),
    CLIENT_KEYS: TOKEN,
    // the fake upstream's task was never submitted through the gateway: with ownership on (auto, with client tokens)
    // it would be hidden (OWNERLESS_TASKS). Not what this test is about; images and ownership: tenancy-push-images.test.ts
    TASK_OWNERSHIP: 'off',
    CORS_ORIGINS: pageOrigin,
    IMAGE_REWRITE: 'on',
    PUBLIC_URL: gatewayUrl
  })
  const app = await buildApp(config)
  t.teardown(() => app.close())
  await app.listen({ port, host: '127.0.0.1' })

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())
  const tab = await browser.newPage()
  const problems: string[] = []
  tab.on('console', (m) => problems.push(`console: ${m.text()}`))
  tab.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText ?? ''}`))
  tab.on('response', (r) => problems.push(`response: ${r.status()} ${r.url()}`))
  await tab.goto(`${pageOrigin}/?gw=${encodeURIComponent(gatewayUrl)}`)
  // evaluated in the page (strings: this file is type-checked without the DOM library)
  await tab
    .waitForFunction(`(() => { const img = document.getElementById('art'); return (img !== null && img.complete && img.naturalWidth > 0) || 'failed' in window })()`, undefined, {
      timeout: 20_000
    })
    .catch((err: unknown) => {
      t.fail(`the image did not show: ${problems.join(' | ')}`)
      throw err
    })
  const shown = (await tab.evaluate(
    `(() => { const img = document.getElementById('art'); return { width: img.naturalWidth, height: img.naturalHeight, src: img.src, failed: window.failed } })()`
  )) as { width: number; height: number; src: string; failed?: string }
  t.equal(shown.failed, undefined)
  t.same({ width: shown.width, height: shown.height }, { width: 40, height: 30 }, 'the browser decoded the archived image')
  t.match(shown.src, new RegExp(`^${gatewayUrl}/mj/image/web1\\?exp=\\d+&sig=`), 'from the gateway, by a signed URL')
  t.notOk(shown.src.includes(TOKEN))
  t.equal(cdn.calls, 1, 'the CDN was asked once')
})
