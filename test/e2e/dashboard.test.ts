// The dashboard in a real browser (Debian's chromium driven by playwright-core): every worker is
// shown, a state change appears without reloading the page, and without JavaScript the page is
// still a complete static table. Saves test-artifacts/dashboard.png. With data planes, the page and
// its event stream are relayed to the control plane from whichever process took the connection.
// Over HTTPS the page comes over HTTP/2, stays live, shows the certificate, and opens a WebSocket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { chromium, type Page } from 'playwright-core'
import { request } from 'undici'
import { startCliServer } from '../helpers/cli.js'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject } from '../helpers/project.js'
import { until } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'
import { makeCertificate } from '../helpers/certificates.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// As root in a container, and with no network: no sandbox, nothing phoning home.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** The state column of a worker's instance table. */
const states = (page: Page, worker: string) =>
  page.$$eval(`[data-worker="${worker}"] tbody tr td:nth-child(4)`, (cells) => cells.map((cell) => cell.textContent?.trim()))

test('the dashboard shows every worker and follows a state change live', async (t) => {
  const root = await useProject(t, 'health', { 'workers/broken/src/main.ts': 'export const oops = {\n' })
  const host = await startHost(t, { root, workerPorts: PORTS.dashboard, health: { interval: 200, timeout: 2000, fall: 2, rise: 1, grace: 60_000, token: '' }, restartDelay: 60_000 })
  await (await host.fetch('/steady/from-the-test')).body.dump()

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  defer(t, () => browser.close())
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
  // Everything the page loads comes from the host: no CDN, no font service, no analytics.
  const requested: string[] = []
  page.on('request', (request) => requested.push(request.url()))
  await page.goto(`${host.url}/health`)
  assert.equal(await page.title(), 'tqserver: degraded')
  await page.waitForSelector('#connection:text("live")')
  for (const worker of ['steady', 'toggle', 'broken']) assert.ok(await page.isVisible(`[data-worker="${worker}"]`), `${worker} is shown`)
  assert.match(await page.textContent('[data-worker="broken"] .problem') ?? '', /Build failed[\s\S]*Expected identifier but found end of file[\s\S]*src\/main.ts:2:0/)
  assert.deepEqual(await states(page, 'steady'), ['HEALTHY'])

  // Runs in the page (globalThis is its window): a mark that a reload would erase.
  await page.evaluate(() => { (globalThis as { marker?: string }).marker = 'same page' })
  await (await host.fetch('/toggle/toggle', { method: 'POST' })).body.dump()
  await page.waitForSelector('[data-worker="toggle"] h2 .badge.bad', { timeout: 10_000 })
  assert.deepEqual(await states(page, 'toggle'), ['UNHEALTHY'])
  assert.equal(await page.evaluate(() => (globalThis as { marker?: string }).marker), 'same page', 'the page was not reloaded')
  assert.match(await page.textContent('.events') ?? '', /unhealthy\s*toggle/)

  assert.deepEqual(requested.filter((url) => !url.startsWith(`${host.url}/`)), [], 'no request leaves the host')
  assert.ok(requested.some((url) => url.includes('/__tqserver/health/stream')), 'the live stream is requested (the recorder works)')

  await page.click('[data-worker="steady"] summary')
  await mkdir(join(REPO_ROOT, 'test-artifacts'), { recursive: true })
  await page.screenshot({ path: join(REPO_ROOT, 'test-artifacts', 'dashboard.png'), fullPage: true })

  const noScript = await browser.newContext({ javaScriptEnabled: false })
  const staticPage = await noScript.newPage()
  await staticPage.goto(`${host.url}/health`)
  assert.deepEqual(await states(staticPage, 'steady'), ['HEALTHY'])
  assert.equal(await staticPage.textContent('#connection'), 'static')
  await noScript.close()
})

test('with several processes serving the port, the dashboard lists them, live, whichever one serves the page', async (t) => {
  const root = await useProject(t, 'multi')
  const server = await startCliServer(t, 'start', root, PORTS.dashboard, ['--proxies', '2'])
  await server.logs.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data plane to serve')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  defer(t, () => browser.close())
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
  await page.goto(`${server.url}/health`)
  await page.waitForSelector('#connection:text("live")')
  const rows = () => page.$$eval('[data-planes] tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')))
  assert.deepEqual((await rows()).map((row) => row[1]), ['control plane', 'data plane'])
  // Requests on connections of their own reach both processes; the table follows without a reload.
  await Promise.all(Array.from({ length: 40 }, async () => (await request(`${server.url}/a/version`, { headers: { connection: 'close' } })).body.dump()))
  const counted = await until(10_000, 'the page to count 40 requests', async () => {
    const counts = (await rows()).map((row) => Number(row[6]))
    return counts.reduce((sum, count) => sum + count, 0) === 40 && counts
  })
  assert.ok(counted.every((count) => count > 0), `each process served some: ${counted.join(', ')}`)
})

test('over HTTPS (HTTP/2) the dashboard stays live, shows the certificate, and a page opens a WebSocket', async (t) => {
  const root = await useProject(t, 'tls', {}, ['ws'])
  await makeCertificate(join(root, 'certs/server.crt'), join(root, 'certs/server.key'))
  const server = await startCliServer(t, 'start', root, PORTS.dashboard, ['--tls-cert', 'certs/server.crt', '--tls-key', 'certs/server.key'])
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  defer(t, () => browser.close())
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } })
  const page = await context.newPage()
  await page.goto(`${server.url}/health`)
  // Runs in the page, whose Performance API names the protocol the page came over.
  const timing = () => (performance as unknown as { getEntriesByType: (type: string) => Array<{ nextHopProtocol: string }> }).getEntriesByType('navigation')[0]!.nextHopProtocol
  assert.equal(await page.evaluate(timing), 'h2')
  await page.waitForSelector('#connection:text("live")')
  assert.match(await page.textContent('[data-tls]') ?? '', /HTTPS certificate\s*files[\s\S]*localhost, 127\.0\.0\.1 · (29|30) days left/)
  const greeting = await page.evaluate((url) => new Promise<string>((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.onmessage = (event) => { resolve(String(event.data)); socket.close() }
    socket.onerror = () => reject(new Error('the WebSocket failed'))
  }), `${server.url.replace('https', 'wss')}/app/ws`)
  assert.equal((JSON.parse(greeting) as { proto: string }).proto, 'https')
})
