// tqserver registered in an existing Fastify app: the app's own routes keep working beside the
// workers, the health endpoints answer, /readyz fails once the app starts to close, and an app that
// terminates TLS itself (HTTP/2 and HTTP/1.1) has its requests and WebSockets proxied unchanged.
import { test } from 'node:test'
import { once } from 'node:events'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { request } from 'undici'
import { tqserver } from '../../plugins/index.js'
import { defer } from '../helpers/cleanup.js'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { makeCertificate } from '../helpers/certificates.js'
import { h1Request, h2Request } from '../helpers/tls-client.js'

test('embedded in an app with its own routes', async (t) => {
  const root = await useProject(t, 'routing', { 'config/server.yaml': 'restartDelay: 60000\n' })
  const host = await startHost(t, { root, workerPorts: PORTS.embedding }, (app) => {
    app.get('/app/status', async () => ({ app: 'mine' }))
    app.post('/app/items', async (request) => ({ created: request.body }))
  })

  await t.test("keeps the app's own routes and serves the workers around them", async () => {
    assert.deepEqual(await (await host.fetch('/app/status')).body.json(), { app: 'mine' })
    const created = await host.fetch('/app/items', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
    assert.deepEqual(await created.body.json(), { created: { a: 1 } }, "the app's JSON parser still applies to its routes")
    const worker = await host.fetch('/app/other')
    assert.equal((await worker.body.json() as { worker: string }).worker, 'index', 'a path the app does not serve goes to a worker')
    assert.equal(typeof host.app.tqserver.routes.match, 'function', 'the registry decorates the root instance')
  })

  await t.test('answers /health, /livez and /readyz', async () => {
    const health = await host.fetch('/health')
    assert.equal(health.statusCode, 200)
    assert.equal(health.headers['cache-control'], 'no-store')
    const report = await health.body.json() as { status: string, workers: Record<string, { status: string, route: string, instances: Array<Record<string, unknown>> }> }
    assert.equal(report.status, 'healthy')
    assert.deepEqual(Object.keys(report.workers).sort(), ['api', 'api-v2', 'apix', 'index'])
    const api = report.workers.api!
    assert.deepEqual([api.status, api.route, api.instances.length], ['healthy', '/api', 1])
    assert.deepEqual(Object.keys(api.instances[0]!).filter((key) => ['pid', 'port', 'state', 'restarts'].includes(key)).sort(), ['pid', 'port', 'restarts', 'state'])
    assert.deepEqual([api.instances[0]!.state, api.instances[0]!.restarts], ['HEALTHY', 0])
    assert.equal((await host.fetch('/livez')).statusCode, 200)
    assert.equal((await host.fetch('/readyz')).statusCode, 200)
  })

  await t.test('reports a worker that is down: /health degraded; /readyz and /livez stay 200 (the others serve)', async () => {
    process.kill(host.app.tqserver.status().workers.apix!.instances[0]!.pid!, 'SIGKILL')
    await host.logs.waitFor((line) => line.worker === 'apix' && line.to === 'BACKOFF', 5000, 'apix to be seen as crashed')
    const health = await host.fetch('/health')
    assert.equal(health.statusCode, 200)
    const report = await health.body.json() as { status: string, workers: Record<string, { status: string }> }
    assert.deepEqual([report.status, report.workers.apix!.status], ['degraded', 'unhealthy'])
    const ready = await host.fetch('/readyz')
    assert.deepEqual([ready.statusCode, await ready.body.json()], [200, { status: 'ready' }], 'one worker down does not take the host out')
    assert.equal((await host.fetch('/livez')).statusCode, 200)
  })
})

test('from the moment the app starts to close, /readyz answers 503, also in an app that serves while closing', async (t) => {
  const root = await useProject(t, 'routing')
  // return503OnClosing: false keeps Fastify routing during close: /readyz itself must say so.
  const app = Fastify({ return503OnClosing: false })
  let closed: Promise<void> | undefined
  defer(t, () => closed ?? app.close())
  await app.register(tqserver, { root, workerPorts: PORTS.embedding, env: {} })
  let during: { statusCode: number, body: unknown } | undefined
  // Runs after tqserver's own preClose hook, while the server still accepts connections.
  app.addHook('preClose', async () => {
    const res = await request(`${url}/readyz`, { reset: true })
    during = { statusCode: res.statusCode, body: await res.body.json() }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await app.tqserver.idle()
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const before = await request(`${url}/readyz`, { reset: true })
  assert.deepEqual([before.statusCode, await before.body.json()], [200, { status: 'ready' }])
  closed = app.close()
  await closed
  assert.deepEqual(during, { statusCode: 503, body: { status: 'closing' } })
})

test('in an app that terminates TLS itself, HTTP/2 and HTTPS/1.1 requests and WebSockets reach the workers', async (t) => {
  const root = await useProject(t, 'tls', {}, ['ws'])
  const { cert, key } = await makeCertificate(join(root, 'certs/app.crt'), join(root, 'certs/app.key'))
  // What docs/tls.md shows for an app of one's own (fastify-cli takes the same as its options).
  const app = Fastify({ http2: true, https: { allowHTTP1: true, cert, key } })
  defer(t, () => app.close())
  await app.register(tqserver, { root, workerPorts: PORTS.embedding, env: {} })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await app.tqserver.idle()
  const url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  for (const send of [h2Request, h1Request]) {
    const answer = await send(url, '/app/where', cert, { method: 'POST', body: 'mine' })
    assert.equal(answer.status, 200, answer.body)
    const seen = JSON.parse(answer.body) as { url: string, proto: string, pseudo: string[], body: string }
    assert.deepEqual([seen.url, seen.proto, seen.pseudo, seen.body], ['/where', 'https', [], 'mine'])
    assert.equal((await send(url, '/health', cert)).status, 200)
  }
  const socket = new WebSocket(`${url.replace('https', 'wss')}/app/ws`, { ca: cert })
  defer(t, () => socket.terminate())
  const [greeting] = await once(socket, 'message') as [Buffer]
  assert.equal((JSON.parse(greeting.toString()) as { proto: string }).proto, 'https')
})
